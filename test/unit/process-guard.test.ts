/**
 * The daemons' process guard, in a real process: socket errors and unhandled rejections
 * are logged and counted and the process goes on; a bug thrown out of a callback still
 * ends it, with the reason.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../fixtures/guarded-process.ts", import.meta.url));

interface LogLine {
  event?: string;
  kind?: string;
  cause?: string;
  err?: { code?: string; message?: string };
  survived?: { kind: string; cause: string; value: number }[];
}

it("a daemon survives socket errors and unhandled rejections, counts them, and still exits on a bug thrown from a callback", () => {
  const run = spawnSync(process.execPath, ["--import", "tsx", SCRIPT], { encoding: "utf8", env: { ...process.env, KILN_LOG_FORMAT: "json" }, timeout: 30_000 });
  const lines = run.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
  const survived = lines.filter((l) => l.event === "survived").map((l) => `${l.kind}/${l.cause} ${l.err?.code ?? l.err?.message}`);
  assert.deepEqual(
    survived.sort(),
    ["uncaught_exception/network ECONNRESET", "unhandled_rejection/bug a bug nobody awaited", "unhandled_rejection/network ERR_STREAM_DESTROYED"],
    run.stdout + run.stderr,
  );
  const counts = lines.find((l) => l.survived)?.survived ?? [];
  const count = (kind: string, cause: string) => counts.find((c) => c.kind === kind && c.cause === cause)?.value;
  assert.equal(count("uncaught_exception", "network"), 1);
  assert.equal(count("unhandled_rejection", "network"), 1);
  assert.equal(count("unhandled_rejection", "bug"), 1);
  // The bug thrown out of a timer: logged as fatal, said on stderr, exit status 1.
  assert.equal(run.status, 1, run.stderr);
  assert.ok(lines.some((l) => l.event === "crashed" && l.err?.message === "a bug in a callback"));
  assert.match(run.stderr, /uncaught exception, exiting: TypeError: a bug in a callback/);
});
