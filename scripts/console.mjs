// The web console's install and build (console/, its own package.json and lockfile), for ensure.mjs and build.mjs.
// Node built-ins only: this runs before any dependency is installed.
import { spawn } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const root = new URL("..", import.meta.url).pathname;
export const consoleDir = join(root, "console");
const outDir = join(root, "dist", "console");
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

/** Runs a command with the terminal's output; resolves when it exits 0, else rejects naming it. */
export function run(command, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: "inherit" });
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} (in ${cwd}) ended with ${signal ?? `exit code ${code}`}`)),
    );
  });
}

/** Newest mtime under `dir`, skipping node_modules. */
export function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules") continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** `npm ci` in console/ when its lockfile is newer than what is installed there. */
export async function ensureConsoleDeps() {
  if (!existsSync(join(consoleDir, "package.json"))) return;
  // A git worktree borrows the main checkout's install through a symlink: npm ci there would empty it for both.
  const modules = join(consoleDir, "node_modules");
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) return;
  const installed = join(consoleDir, "node_modules", ".package-lock.json");
  if (existsSync(installed) && mtime(join(consoleDir, "package-lock.json")) <= mtime(installed)) return;
  console.error("[kiln] installing the console's npm dependencies (npm ci in console/)…");
  await run("npm", ["ci", "--no-audit", "--no-fund"], consoleDir);
}

/** The build is stale when anything in console/ or the shared schemas it bundles (src/api, src/common) is newer. */
export function consoleBuildStale() {
  if (!existsSync(join(consoleDir, "package.json"))) return false;
  const inputs = Math.max(newest(consoleDir), newest(join(root, "src", "api")), newest(join(root, "src", "common")));
  return mtime(join(outDir, "index.html")) < inputs;
}

/** vite build into dist/console, then a gzip and a brotli copy of every asset (the manager sends the one the browser takes). */
export async function buildConsole() {
  await ensureConsoleDeps();
  console.error("[kiln] building the console into dist/console…");
  await run(process.execPath, [join(consoleDir, "node_modules", "vite", "bin", "vite.js"), "build", "--logLevel", "warn"], consoleDir);
  const assets = join(outDir, "assets");
  for (const name of readdirSync(assets)) {
    if (!/\.(js|css|svg|json)$/.test(name)) continue;
    const data = readFileSync(join(assets, name));
    writeFileSync(join(assets, `${name}.gz`), gzipSync(data, { level: 9 }));
    writeFileSync(join(assets, `${name}.br`), brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
  }
}
