/**
 * `kiln get` failures, through a real scheduler + seed peer + peer: the exit code,
 * a message naming the cause, nothing left at -O (nor a .part beside it), and the
 * processes keep serving afterwards.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net, { type AddressInfo } from "node:net";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { runKiln } from "../helpers/proc.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("kiln get: failures name their cause and leave nothing behind", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  let seed: PeerHandle;
  let peer: PeerHandle;
  let outRoot: string;
  let big: OriginFile;

  before(async () => {
    origin = await startOrigin();
    big = makeFile(10 * MiB);
    origin.add("/big.bin", big);
    cluster = await TestCluster.start();
    seed = await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer");
    outRoot = await mkdtemp(join(tmpdir(), "kiln-get-errors-"));
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    if (outRoot) await rm(outRoot, { recursive: true, force: true });
  });

  /** Runs `kiln get` into a fresh directory; returns the result and what is left in that directory. */
  async function get(url: string, extra: string[] = [], via = peer.proxyUrl) {
    const dir = await mkdtemp(join(outRoot, "case-"));
    const out = join(dir, "out.bin");
    const r = await runKiln(["get", url, "-O", out, "--peer", via, "--no-progress", ...extra], { timeoutMs: 60_000 });
    return { ...r, dir, out, left: await readdir(dir) };
  }

  function assertFailedCleanly(r: Awaited<ReturnType<typeof get>>) {
    assert.notEqual(r.code, 0, `exit code; stderr: ${r.stderr}`);
    assert.notEqual(r.code, null, "exited on its own, not killed");
    assert.deepEqual(r.left, [], "no file at -O and no .part leftovers beside it");
    assert.match(r.stderr, /^kiln get: /m, "a one-line message from kiln get");
    assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, "no stack trace");
  }

  it("origin 404: non-zero exit, the message says the origin answered 404", async () => {
    const r = await get(`${origin.url}/status/404`);
    assertFailedCleanly(r);
    assert.match(r.stderr, /404/);
    assert.match(r.stderr, /origin/i);
    assert.doesNotMatch(r.stderr, /\(status 404\)/, "the status is not said twice");
  });

  it("origin 500: non-zero exit, the message says the origin answered 500", async () => {
    const r = await get(`${origin.url}/status/500`);
    assertFailedCleanly(r);
    assert.match(r.stderr, /500/);
    assert.match(r.stderr, /origin/i);
  });

  it("connection reset by the origin mid-body: non-zero exit, the message says reset", async () => {
    const r = await get(`${origin.url}/reset/big.bin`);
    assertFailedCleanly(r);
    assert.match(r.stderr, /reset/i);
    assert.ok((origin.sent.get("/reset/big.bin") ?? 0) > 0, "the origin did start sending the body");
  });

  it("a host that cannot be resolved: non-zero exit, the message says it cannot be resolved", async () => {
    const r = await get("http://kiln-does-not-exist.invalid/x");
    assertFailedCleanly(r);
    assert.match(r.stderr, /resolve|ENOTFOUND/);
    assert.match(r.stderr, /kiln-does-not-exist\.invalid/, "names the host");
  });

  it("no peer listening at --peer: non-zero exit, the message says the peer cannot be reached", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const r = await get(`${origin.url}/big.bin`, [], `http://127.0.0.1:${port}`);
    assertFailedCleanly(r);
    assert.match(r.stderr, /cannot reach the kiln peer/);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(r.stderr, /refused/i);
  });

  it("a failed download leaves a file already at -O untouched", async () => {
    const dir = await mkdtemp(join(outRoot, "keep-"));
    const out = join(dir, "existing.bin");
    await writeFile(out, "precious");
    const r = await runKiln(["get", `${origin.url}/status/404?again=1`, "-O", out, "--peer", peer.proxyUrl, "--no-progress"]);
    assert.notEqual(r.code, 0);
    assert.equal(await readFile(out, "utf8"), "precious");
    assert.deepEqual(await readdir(dir), ["existing.bin"], "no .part leftovers");
  });

  it("not a URL: non-zero exit with a clear message", async () => {
    const r = await get("definitely not a url");
    assertFailedCleanly(r);
    assert.match(r.stderr, /not a URL/);
  });

  it("a URL that is not http(s): non-zero exit, the message says only http:// and https:// URLs can be downloaded", async () => {
    const r = await get("ftp://files.example/pub/file.bin");
    assertFailedCleanly(r);
    assert.match(r.stderr, /only http:\/\/ and https:\/\/ URLs can be downloaded, not ftp:\/\//);
  });

  it("after all that, a good download through the same peer works and is byte-exact", async () => {
    for (const p of [cluster.scheduler, seed.proc, peer.proc]) assert.equal(p.proc.exitCode, null, "still running");
    const r = await get(`${origin.url}/big.bin`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.left, ["out.bin"], "only the file, no .part");
    assert.equal(sha256(await readFile(r.out)), big.sha256);
    assert.match(r.stderr, /saved .*out\.bin/);
    // And the failed URLs can be retried: still failing the same way, not stuck.
    const again = await get(`${origin.url}/status/500`);
    assertFailedCleanly(again);
    assert.match(again.stderr, /500/);
  });
});
