import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import http from "node:http";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, metric } from "../helpers/cluster.js";
import { taskIdFor } from "../../src/common/task-id.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

describe("peer storage", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  before(async () => {
    origin = await startOrigin();
    cluster = await TestCluster.start({ clusterSecret: "storage-test-cluster-secret-0123456789" });
    await cluster.addPeer("seed", { seed: true });
  });
  after(async () => {
    await cluster.stop();
    await origin.close();
  });

  it("keeps completed tasks across a restart and drops a task directory it cannot use", async () => {
    const file = makeFile(10 * MiB);
    origin.add("/keep.bin", file);
    const peer = await cluster.addPeer("restart");
    assert.equal((await cluster.get(peer, `${origin.url}/keep.bin`, join(cluster.dir, "keep1"))).code, 0);
    await peer.proc.kill("SIGTERM");
    // A task directory whose metadata is unreadable (a download cut short keeps its verified pieces: restarts.test.ts).
    const junk = join(peer.dataDir, "tasks", "a".repeat(64));
    await mkdir(junk, { recursive: true });
    await writeFile(join(junk, "meta.json"), JSON.stringify({ complete: false }));

    const sentBefore = origin.totalSent();
    const again = await cluster.addPeer("restart-2", { dataDir: peer.dataDir });
    assert.equal(existsSync(junk), false, "the unusable task directory was removed");
    const r = await cluster.get(again, `${origin.url}/keep.bin`, join(cluster.dir, "keep2"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "keep2"))), file.sha256);
    assert.equal(origin.totalSent(), sentBefore, "served from the restarted peer's disk");
  });

  it("evicts tasks whose TTL expired", async () => {
    const file = makeFile(5 * MiB);
    origin.add("/ttl.bin", file);
    const peer = await cluster.addPeer("ttl", { args: ["--gc-ttl", "300", "--gc-interval-ms", "200"] });
    const first = await cluster.get(peer, `${origin.url}/ttl.bin`, join(cluster.dir, "ttl.out"));
    assert.equal(first.code, 0, first.stderr);
    const dir = join(peer.dataDir, "tasks", taskIdFor({ url: `${origin.url}/ttl.bin`, filteredQueryParams: ["Expires", "Signature", "ns"] }));
    await eventually(() => !existsSync(dir), "the expired task is evicted");
    const r = await cluster.get(peer, `${origin.url}/ttl.bin`, join(cluster.dir, "ttl2.out"));
    assert.equal(r.code, 0, "an evicted task downloads again");
  });

  it("evicts least recently used tasks above the high watermark down to the low one", async () => {
    const peer = await cluster.addPeer("lru", { args: ["--gc-quota", "20MiB", "--gc-high", "60", "--gc-low", "30", "--gc-interval-ms", "200"] });
    const ids: string[] = [];
    for (const name of ["a", "b", "c"]) {
      origin.add(`/lru-${name}`, makeFile(5 * MiB));
      assert.equal((await cluster.get(peer, `${origin.url}/lru-${name}`, join(cluster.dir, `lru-${name}.out`))).code, 0);
      ids.push(taskIdFor({ url: `${origin.url}/lru-${name}`, filteredQueryParams: ["Expires", "Signature", "ns"] }));
      await new Promise((r) => setTimeout(r, 20)); // distinct access times
    }
    // 15 MiB of 20 is 75 % > 60 %: evict oldest first until at most 30 % (6 MiB) remains.
    await eventually(async () => (await readdir(join(peer.dataDir, "tasks"))).length === 1, "eviction down to one task");
    assert.deepEqual(await readdir(join(peer.dataDir, "tasks")), [ids[2]]);
  });

  it("limits concurrent uploads: beyond the limit a child waits in line for the next slot, beyond the line it gets 429", async () => {
    const file = makeFile(8 * MiB);
    origin.add("/slots.bin", file);
    const peer = await cluster.addPeer("slots", { args: ["--upload-concurrency", "1", "--upload-rate", "1MiB"] });
    assert.equal((await cluster.get(peer, `${origin.url}/slots.bin`, join(cluster.dir, "slots.out"))).code, 0);
    const taskId = taskIdFor({ url: `${origin.url}/slots.bin`, filteredQueryParams: ["Expires", "Signature", "ns"] });
    // The first upload takes seconds at 1 MiB/s, holding the only slot.
    const first = http.get({ host: "127.0.0.1", port: peer.uploadPort, path: `/pieces/${taskId}/0`, headers: cluster.uploadHeaders() });
    const firstRes = await new Promise<http.IncomingMessage>((r) => first.once("response", r));
    assert.equal(firstRes.statusCode, 200);
    // One slot and a line of one: the second request waits, the third is told to go elsewhere.
    const second = fetch(`http://127.0.0.1:${peer.uploadPort}/pieces/${taskId}/1`, { headers: cluster.uploadHeaders() });
    let secondAnswered = false;
    void second.then(() => (secondAnswered = true));
    const third = await fetch(`http://127.0.0.1:${peer.uploadPort}/pieces/${taskId}/1`, { headers: cluster.uploadHeaders() });
    assert.equal(third.status, 429);
    assert.match(((await third.json()) as { message: string }).message, /upload slots/);
    assert.equal(secondAnswered, false, "the second request is still waiting for the slot");
    first.destroy();
    const secondRes = await second;
    assert.equal(secondRes.status, 200, "the freed slot went to the request waiting for it");
    assert.equal(Buffer.from(await secondRes.arrayBuffer()).length, Math.min(file.data.length - 4 * MiB, 4 * MiB), "piece 1, whole");
  });
});

describe("a full disk", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  let mountPoint: string;
  before(async () => {
    origin = await startOrigin();
    cluster = await TestCluster.start();
    await cluster.addPeer("seed", { seed: true });
    mountPoint = join(cluster.dir, "small-disk");
    await mkdir(mountPoint);
    // Needs root (as in CI); fails loudly otherwise rather than skipping.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint]);
  });
  after(async () => {
    await cluster.stop().catch(() => undefined);
    try {
      execFileSync("umount", [mountPoint]);
    } catch {
      /* already gone */
    }
    await origin.close();
  });

  it("fails the download with a clear message, leaves no file and keeps serving", async () => {
    const big = makeFile(20 * MiB);
    origin.add("/too-big.bin", big);
    const peer = await cluster.addPeer("small", { dataDir: join(mountPoint, "peer") });
    const out = join(cluster.dir, "too-big.out");
    const r = await cluster.get(peer, `${origin.url}/too-big.bin`, out);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no space left on device/);
    assert.equal(existsSync(out), false);
    await eventually(async () => (await readdir(join(peer.dataDir, "tasks"))).length === 0, "the partial task is removed");

    const small = makeFile(2 * MiB);
    origin.add("/small.bin", small);
    const ok = await cluster.get(peer, `${origin.url}/small.bin`, join(cluster.dir, "small.out"));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "small.out"))), small.sha256);
  });
});

describe("a restarted peer", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  before(async () => {
    origin = await startOrigin();
    cluster = await TestCluster.start(); // no seed peer: the first peer fetches from the origin itself
  });
  after(async () => {
    await cluster.stop();
    await origin.close();
  });

  it("registers the tasks it holds again, so other peers fetch from it instead of the origin", async () => {
    const file = makeFile(12 * MiB);
    origin.add("/held.bin", file);
    const first = await cluster.addPeer("holder");
    assert.equal((await cluster.get(first, `${origin.url}/held.bin`, join(cluster.dir, "held1.out"))).code, 0);
    assert.equal(origin.sent.get("/held.bin"), file.data.length);
    await first.proc.kill("SIGTERM");

    await cluster.addPeer("holder-again", { dataDir: first.dataDir });
    const other = await cluster.addPeer("other");
    const r = await cluster.get(other, `${origin.url}/held.bin`, join(cluster.dir, "held2.out"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(await readFile(join(cluster.dir, "held2.out"))), file.sha256);
    assert.equal(origin.sent.get("/held.bin"), file.data.length, "the origin was not asked again");
    assert.equal(await metric(other.metricsUrl, "kiln_peer_download_bytes_total", { source: "p2p" }), file.data.length);
  });
});
