// Installs what is missing and builds what is stale, using only Node built-ins,
// so `npm start` / `npm test` work on a fresh clone.
import { execSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildConsole, consoleBuildStale, ensureConsoleDeps } from "./console.mjs";

const root = new URL("..", import.meta.url).pathname;
const run = (cmd) => execSync(cmd, { cwd: root, stdio: "inherit" });
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const installed = join(root, "node_modules/.package-lock.json");
// A git worktree borrows the main checkout's install through a symlink: npm ci there would empty it for both.
const borrowed = existsSync(join(root, "node_modules")) && lstatSync(join(root, "node_modules")).isSymbolicLink();
if (!borrowed && (!existsSync(installed) || mtime(join(root, "package-lock.json")) > mtime(installed))) {
  console.error("[kiln] installing npm dependencies (npm ci)…");
  run("npm ci --no-audit --no-fund");
}
ensureConsoleDeps();
if (mtime(join(root, "dist/kiln.mjs")) < Math.max(newest(join(root, "src")), mtime(join(root, "package-lock.json")))) {
  console.error("[kiln] building dist/kiln.mjs…");
  run("node scripts/build.mjs"); // the console too, when it is stale
} else if (consoleBuildStale()) {
  buildConsole();
}
