// Installs what is missing and builds what is stale, using only Node built-ins,
// so `npm start` / `npm test` work on a fresh clone.
// The root install (most of it compiling better-sqlite3 on one core) and the console's
// install and build run side by side: on a fresh clone that takes the console's ~20 s
// off the wait.
import { existsSync, lstatSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildConsole, consoleBuildStale, ensureConsoleDeps, newest, run } from "./console.mjs";

const root = new URL("..", import.meta.url).pathname;
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

async function ensureRootDeps() {
  const installed = join(root, "node_modules/.package-lock.json");
  // A git worktree borrows the main checkout's install through a symlink: npm ci there would empty it for both.
  const borrowed = existsSync(join(root, "node_modules")) && lstatSync(join(root, "node_modules")).isSymbolicLink();
  if (borrowed || (existsSync(installed) && mtime(join(root, "package-lock.json")) <= mtime(installed))) return;
  console.error("[kiln] installing npm dependencies (npm ci)…");
  await run("npm", ["ci", "--no-audit", "--no-fund"], root);
}

async function ensureConsole() {
  await ensureConsoleDeps();
  if (consoleBuildStale()) await buildConsole();
}

// Both run to their end (neither is left running orphaned when the other fails).
const failed = (await Promise.allSettled([ensureRootDeps(), ensureConsole()])).filter((r) => r.status === "rejected");
if (failed.length) {
  for (const f of failed) console.error(`[kiln] ${f.reason.message}`);
  process.exit(1);
}
if (mtime(join(root, "dist/kiln.mjs")) < Math.max(newest(join(root, "src")), mtime(join(root, "package-lock.json")))) {
  console.error("[kiln] building dist/kiln.mjs…");
  await run(process.execPath, ["scripts/build.mjs"], root); // the console is fresh by now
}
