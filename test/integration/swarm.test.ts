import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readFile, readdir, writeFile, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, metric } from "../helpers/cluster.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("a swarm of peers fetching the same file", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  before(async () => {
    origin = await startOrigin();
    cluster = await TestCluster.start();
  });
  after(async () => {
    await cluster.stop();
    await origin.close();
  });

  it("a seed and 16 peers on slow uplinks fetch 32 MiB at once: every copy is right, the origin sends it once, no peer goes to the origin", async () => {
    const file = makeFile(32 * MiB + 4321);
    origin.add("/big.iso", file);
    await cluster.addPeer("seed-1", { seed: true });
    // Uplinks capped and a 1 s fallback timer: a swarm that is slow, not broken, must wait for its parents.
    const slow = ["--upload-rate", "6MiB", "--fallback-ms", "1000"];
    const peers = await Promise.all(Array.from({ length: 16 }, (_, i) => cluster.addPeer(`peer-${i + 1}`, { args: slow })));
    const results = await Promise.all(peers.map((p) => cluster.get(p, `${origin.url}/big.iso`, join(cluster.dir, `${p.name}.out`))));
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, `peer-${i + 1}: ${r.stderr}`);
      assert.equal(sha256(await readFile(join(cluster.dir, `peer-${i + 1}.out`))), file.sha256);
    }
    assert.equal(origin.sent.get("/big.iso"), file.data.length, "the origin sent the content exactly once");
    const fromOrigin = await Promise.all(peers.map((p) => metric(p.metricsUrl, "kiln_peer_download_bytes_total", { source: "origin" })));
    assert.deepEqual(
      fromOrigin.filter((b) => b > 0),
      [],
      "no peer fetched from the origin",
    );
    const fromPeers = await Promise.all(peers.map((p) => metric(p.metricsUrl, "kiln_peer_download_bytes_total", { source: "p2p" })));
    assert.equal(
      fromPeers.reduce((a, b) => a + b, 0),
      16 * file.data.length,
      "all 16 peers got every byte from the swarm",
    );
    const served = await Promise.all(peers.map((p) => metric(p.metricsUrl, "kiln_peer_upload_bytes_total")));
    assert.ok(served.filter((b) => b > 0).length >= 12, `pieces spread: peers served each other (${served.map((b) => Math.round(b / MiB)).join(", ")} MiB)`);
  });

  it("a second download of the same URL on a peer is served from its disk", async () => {
    const before = origin.totalSent();
    const peer = cluster.peers.find((p) => p.name === "peer-1")!;
    const r = await cluster.get(peer, `${origin.url}/big.iso`, join(cluster.dir, "again.out"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(origin.totalSent(), before);
  });
});

/**
 * Puts back a file's mtime to the nanosecond (GNU touch): bytes changed behind a peer's back
 * the way bit rot or a peer that lies on purpose would, which its own check (the content
 * file's mtime and size against those at completion) cannot see.
 */
async function hideChange(path: string, mtimeNs: bigint): Promise<void> {
  const ns = mtimeNs % 1_000_000_000n;
  execFileSync("touch", ["-m", "-d", `@${mtimeNs / 1_000_000_000n}.${String(ns).padStart(9, "0")}`, path]);
  assert.equal((await stat(path, { bigint: true })).mtimeNs, mtimeNs, "the mtime is back");
}

describe("failures in the swarm", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  before(async () => {
    // A slow origin keeps transfers in flight long enough to kill a parent mid-way.
    origin = await startOrigin({ rateBytes: 12 * MiB });
    // Dead hosts are noticed within 1.5 s; live ones announce every 300 ms.
    cluster = await TestCluster.start({ schedulerArgs: ["--host-timeout-ms", "1500"], peerArgs: ["--keepalive-ms", "300"] });
  });
  after(async () => {
    await cluster.stop();
    await origin.close();
  });

  it("the seed peer is killed mid-transfer: its children still finish with correct content", async () => {
    const file = makeFile(40 * MiB);
    origin.add("/killed.bin", file);
    const seed = await cluster.addPeer("seed-k", { seed: true });
    const peers = await Promise.all(["kid-1", "kid-2", "kid-3"].map((n) => cluster.addPeer(n, { args: ["--piece-stall-ms", "2000"] })));
    const downloads = peers.map((p) => cluster.get(p, `${origin.url}/killed.bin`, join(cluster.dir, `${p.name}.out`)));
    // Kill the seed once it has served part of the file to the children.
    for (let i = 0; i < 200; i++) {
      const got = await Promise.all(peers.map((p) => metric(p.metricsUrl, "kiln_peer_download_bytes_total", { source: "p2p" })));
      if (got.some((b) => b >= 8 * MiB)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const servedBeforeKill = await metric(seed.metricsUrl, "kiln_peer_upload_bytes_total");
    assert.ok(servedBeforeKill > 0, "the seed had served pieces before it was killed");
    await seed.proc.kill("SIGKILL");
    const results = await Promise.all(downloads);
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, `${peers[i]!.name}: ${r.stderr}`);
      assert.equal(sha256(await readFile(join(cluster.dir, `${peers[i]!.name}.out`))), file.sha256);
    }
  });

  it("a peer serving corrupt bytes is rejected and avoided; the download is right and nothing corrupt is stored", async () => {
    const file = makeFile(24 * MiB);
    origin.add("/tamper.bin", file);
    await cluster.addPeer("seed-t", { seed: true });
    const bad = await cluster.addPeer("bad");
    const r1 = await cluster.get(bad, `${origin.url}/tamper.bin`, join(cluster.dir, "bad.out"));
    assert.equal(r1.code, 0, r1.stderr);
    // Corrupt every byte the bad peer holds, behind its back (a flaky disk, or malice).
    const [taskDir] = await readdir(join(bad.dataDir, "tasks"));
    const content = join(bad.dataDir, "tasks", taskDir!, "content");
    const before = await stat(content, { bigint: true });
    await writeFile(content, Buffer.alloc(Number(before.size), 0x5a));
    await hideChange(content, before.mtimeNs);

    const good = await cluster.addPeer("good", { args: ["--upload-concurrency", "8"] });
    const r2 = await cluster.get(good, `${origin.url}/tamper.bin`, join(cluster.dir, "good.out"));
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "good.out"))), file.sha256);
    assert.ok((await metric(good.metricsUrl, "kiln_peer_piece_failures_total", { kind: "digest_mismatch" })) >= 1, "a piece from the bad peer was rejected");
    // After its first wrong piece the bad peer gets no more requests beyond those already in flight (3 per parent).
    const served = await metric(bad.metricsUrl, "kiln_peer_upload_bytes_total");
    assert.ok(served <= 3 * 4 * MiB, `bad peer served ${served} bytes`);
    const [goodTask] = await readdir(join(good.dataDir, "tasks"));
    assert.equal(sha256(await readFile(join(good.dataDir, "tasks", goodTask!, "content"))), file.sha256, "the stored copy is correct");
  });
  it("a peer that announces pieces it cannot serve is dropped; the download completes from the others", async () => {
    const file = makeFile(24 * MiB);
    origin.add("/liar.bin", file);
    await cluster.addPeer("seed-l", { seed: true });
    const liar = await cluster.addPeer("liar");
    const r1 = await cluster.get(liar, `${origin.url}/liar.bin`, join(cluster.dir, "liar.out"));
    assert.equal(r1.code, 0, r1.stderr);
    // Its metadata still lists every piece (its have feed says so), but the bytes are gone:
    // a hole where they were, of the same size and mtime, so the peer itself does not notice.
    const [taskDir] = await readdir(join(liar.dataDir, "tasks"));
    const content = join(liar.dataDir, "tasks", taskDir!, "content");
    const before = await stat(content, { bigint: true });
    await truncate(content, 0);
    await truncate(content, Number(before.size));
    await hideChange(content, before.mtimeNs);

    const child = await cluster.addPeer("child-l");
    const r2 = await cluster.get(child, `${origin.url}/liar.bin`, join(cluster.dir, "child-l.out"));
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "child-l.out"))), file.sha256);
    const failed = await metric(child.metricsUrl, "kiln_peer_piece_failures_total", { kind: "digest_mismatch" });
    // A peer is asked before a seed, so the child tried the liar first.
    assert.ok(failed >= 1, "the child asked the liar and got no piece from it");
    assert.ok(failed <= 3, `after its first failure the liar gets no more requests beyond those in flight (${failed} failed)`);
  });

  it("a peer whose stored file changed behind its back (truncated) drops the task instead of serving it", async () => {
    const file = makeFile(12 * MiB);
    origin.add("/changed.bin", file);
    await cluster.addPeer("seed-c", { seed: true });
    const holder = await cluster.addPeer("holder");
    const r1 = await cluster.get(holder, `${origin.url}/changed.bin`, join(cluster.dir, "holder.out"));
    assert.equal(r1.code, 0, r1.stderr);
    const [taskDir] = await readdir(join(holder.dataDir, "tasks"));
    await truncate(join(holder.dataDir, "tasks", taskDir!, "content"), 0);

    const child = await cluster.addPeer("child-c");
    const r2 = await cluster.get(child, `${origin.url}/changed.bin`, join(cluster.dir, "child-c.out"));
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "child-c.out"))), file.sha256);
    const failures = async (kind: string) => metric(child.metricsUrl, "kiln_peer_piece_failures_total", { kind });
    assert.equal(await failures("digest_mismatch"), 0, "the holder served no byte of the changed file");
    // Asked before the scheduler heard the holder left, it answers "not held" (404) to what was in flight.
    assert.ok((await failures("http_error")) <= 3, `at most the pieces in flight were refused (${await failures("http_error")})`);
    assert.deepEqual(await readdir(join(holder.dataDir, "tasks")), [], "the holder dropped the changed task");
    const again = await cluster.get(holder, `${origin.url}/changed.bin`, join(cluster.dir, "holder-again.out"));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "holder-again.out"))), file.sha256, "and downloads it again when asked");
  });
});
