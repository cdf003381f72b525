// The whole suite: lint and format check (Biome), type check (tsc, root and console), unit tests, then integration tests with real
// processes on loopback, then end-to-end tests in a real browser. Files run one at a time
// (2-core machine; integration tests start several processes). With file arguments: just those.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const files = (dir) =>
  (existsSync(join(root, dir)) ? readdirSync(join(root, dir), { recursive: true }) : [])
    .map(String)
    .filter((f) => f.endsWith(".test.ts"))
    .sort()
    .map((f) => join(dir, f));
const only = process.argv.slice(2);
if (!only.length) {
  const lint = spawnSync(join(root, "node_modules/.bin/biome"), ["check", "."], { cwd: root, stdio: "inherit" });
  if (lint.status !== 0) {
    console.error("[kiln] biome check failed: `npm run format` fixes formatting; lint findings need a change");
    process.exit(lint.status ?? 1);
  }
  // esbuild and vite strip types without checking them: the type check is its own step.
  const tsc = join(root, "node_modules/.bin/tsc");
  for (const project of [".", "console"]) {
    const check = spawnSync(tsc, ["--noEmit", "-p", project], { cwd: root, stdio: "inherit" });
    if (check.status !== 0) {
      console.error(`[kiln] type check failed in ${project === "." ? "the root package" : "console/"} (tsc --noEmit -p ${project})`);
      process.exit(check.status ?? 1);
    }
  }
}
const all = only.length ? only : [...files("test/unit"), ...files("test/integration"), ...files("test/e2e")];
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...all], {
  cwd: root,
  stdio: "inherit",
});
process.exit(r.status ?? 1);
