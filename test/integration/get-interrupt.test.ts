/**
 * `kiln get` interrupted mid-download: Ctrl-C, `kill`, and
 * `timeout` expiring leave no partial `.<name>.kiln-<id>.part` beside -O and no file
 * at -O, and the exit status is the shell's for the signal. A real scheduler, seed
 * peer and peer on loopback, and an origin slow enough to interrupt mid-way.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { KILN_BIN } from "../helpers/proc.js";

const MiB = 1024 * 1024;
/** Slow enough that every case below interrupts a download that is far from done. */
const ORIGIN_RATE = 2 * MiB;

interface Running {
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function start(argv: string[]): Running {
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
  return { pid: proc.pid!, exited };
}

/** Resolves once `dir` holds a non-empty `.part` file (the download is under way and writing). */
async function partialFileIn(dir: string): Promise<string> {
  for (;;) {
    for (const name of await readdir(dir)) {
      if (!name.endsWith(".part")) continue;
      const size = await stat(join(dir, name)).then(
        (s) => s.size,
        () => 0,
      );
      if (size > 0) return name;
    }
    await sleep(50);
  }
}

describe("kiln get interrupted: no partial file, the signal's exit status", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  let peer: PeerHandle;
  let outRoot: string;
  let file: OriginFile;
  let n = 0;

  before(async () => {
    origin = await startOrigin({ rateBytes: ORIGIN_RATE });
    file = makeFile(40 * MiB);
    cluster = await TestCluster.start();
    await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer");
    outRoot = await mkdtemp(join(tmpdir(), "kiln-get-interrupt-"));
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    if (outRoot) await rm(outRoot, { recursive: true, force: true });
  });

  /** A fresh URL (its own task, so no case finds another's download done) and output directory. */
  async function fresh() {
    const path = `/slow-${++n}.bin`;
    origin.add(path, file);
    const dir = await mkdtemp(join(outRoot, "case-"));
    return { path, url: `${origin.url}${path}`, dir, out: join(dir, "out.bin") };
  }

  const kilnGet = (url: string, out: string, extra: string[] = []) => [
    process.execPath,
    KILN_BIN,
    "get",
    url,
    "-O",
    out,
    "--peer",
    peer.proxyUrl,
    "--no-progress",
    ...extra,
  ];

  for (const [signal, status] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`${signal} while the content streams in: exit ${status}, the .part is removed, nothing at -O`, async () => {
      const c = await fresh();
      const get = start(kilnGet(c.url, c.out, ["--no-local-copy"]));
      const part = await partialFileIn(c.dir);
      assert.match(part, /^\.out\.bin\.kiln-[0-9a-f]+\.part$/);
      process.kill(get.pid, signal);
      const r = await get.exited;
      assert.deepEqual(await readdir(c.dir), [], "no .part and no output file");
      assert.equal(r.code, status, `exit status; stderr: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`kiln get: interrupted by ${signal}; the partial download is removed`));
      assert.ok((origin.sent.get(c.path) ?? 0) < file.data.length, "interrupted before the origin had sent everything");
    });
  }

  it("`timeout` expiring (SIGALRM to timeout, which sends SIGTERM): exit 124, the .part is removed", async () => {
    const c = await fresh();
    const get = start(["timeout", "600", ...kilnGet(c.url, c.out, ["--no-local-copy"])]);
    await partialFileIn(c.dir);
    // What timeout does when its time is up, without a race against the download's speed.
    process.kill(get.pid, "SIGALRM");
    const r = await get.exited;
    assert.deepEqual(await readdir(c.dir), [], "no .part and no output file");
    assert.equal(r.code, 124, `timeout's status for a command it timed out; stderr: ${r.stderr}`);
    assert.match(r.stderr, /interrupted by SIGTERM/);
  });

  it("SIGINT while waiting for a local copy (the default on the peer's host): exit 130, nothing left", async () => {
    const c = await fresh();
    const get = start(kilnGet(c.url, c.out));
    while ((origin.sent.get(c.path) ?? 0) === 0) await sleep(50);
    process.kill(get.pid, "SIGINT");
    const r = await get.exited;
    assert.deepEqual(await readdir(c.dir), []);
    assert.equal(r.code, 130, `exit status; stderr: ${r.stderr}`);
  });

  it("an interrupted download over a file already at -O leaves that file untouched", async () => {
    const c = await fresh();
    await writeFile(c.out, "precious");
    const get = start(kilnGet(c.url, c.out, ["--no-local-copy"]));
    await partialFileIn(c.dir);
    process.kill(get.pid, "SIGTERM");
    const r = await get.exited;
    assert.deepEqual(await readdir(c.dir), ["out.bin"], "no .part beside it");
    assert.equal(r.code, 143, r.stderr);
    assert.equal(await readFile(c.out, "utf8"), "precious");
  });

  it("the peer outlives its interrupted clients", async () => {
    assert.equal(peer.proc.proc.exitCode, null);
    const res = await fetch(`${peer.proxyUrl}/healthy`);
    assert.equal(res.status, 200);
  });
});
