/**
 * A peer that holds more tasks than it keeps in memory: with
 * --resident-tasks 5 it takes 30 distinct tasks through its proxy; the metadata of at
 * most 5 stays in memory, and every task is still served from its disk to clients
 * and to other peers, and registered again after a restart. (The memory figures at
 * 20,000 tasks are in bench/proxy-memory.ts.)
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { metric, TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/registry.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { join } from "node:path";

const TASKS = 30;
const RESIDENT = 5;

/** GET `url` through the peer's proxy as `kiln get` on its host would (P2P asked for); resolves with the body's sha256. */
function viaProxy(peer: PeerHandle, url: string): Promise<{ status: number; sha256: string }> {
  const proxy = new URL(peer.proxyUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { "x-dragonfly-use-p2p": "true" } }, (res) => {
      const hash = createHash("sha256");
      res.on("data", (c: Buffer) => hash.update(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, sha256: hash.digest("hex") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a peer holding more tasks than it keeps in memory", () => {
  let cluster: TestCluster | undefined;
  let origin: TestOrigin | undefined;
  after(async () => {
    await cluster?.stop();
    await origin?.close();
  });

  it("keeps --resident-tasks in memory, serves every task from disk to clients and other peers, and registers them all after a restart", async () => {
    origin = await startOrigin();
    const files: OriginFile[] = [];
    for (let i = 0; i < TASKS; i++) {
      files.push(makeFile(10_000 + i));
      origin.add(`/tiny/${i}`, files[i]!);
    }
    const url = (i: number) => `${origin!.url}/tiny/${i}`;
    const check = async (peer: PeerHandle, i: number) => {
      const got = await viaProxy(peer, url(i));
      assert.deepEqual(got, { status: 200, sha256: files[i]!.sha256 }, `task ${i} through ${peer.name}`);
    };
    // No seed peer: the peer fetches each task from the origin itself.
    cluster = await TestCluster.start();
    const port = await freePort();
    const dataDir = join(cluster.dir, "peer-1");
    const start = () => cluster!.addPeer("peer-1", { dataDir, args: ["--port", String(port), "--resident-tasks", String(RESIDENT)] });
    let peer = await start();
    for (let i = 0; i < TASKS; i++) await check(peer, i);

    assert.equal(await metric(peer.metricsUrl, "kiln_peer_tasks"), TASKS, "every task is held");
    const inMemory = await metric(peer.metricsUrl, "kiln_peer_tasks_in_memory");
    assert.ok(inMemory >= 1 && inMemory <= RESIDENT, `${inMemory} tasks in memory`);
    const totalBytes = files.reduce((n, f) => n + f.data.length, 0);
    assert.equal(await metric(peer.metricsUrl, "kiln_peer_stored_bytes"), totalBytes);

    // The oldest again: from this peer's disk, not the origin.
    const originRequests = origin.requests.length;
    for (const i of [0, 1, 2]) await check(peer, i);
    assert.equal(origin.requests.length, originRequests, "served from the peer's disk");

    // Another peer gets an early task, not in memory on the first one, from it.
    const uploadedBefore = await metric(peer.metricsUrl, "kiln_peer_upload_bytes_total");
    const other = await cluster.addPeer("peer-2");
    await check(other, 3);
    assert.equal(origin.requests.length, originRequests, "served by the first peer, not the origin");
    assert.equal((await metric(peer.metricsUrl, "kiln_peer_upload_bytes_total")) - uploadedBefore, files[3]!.data.length);

    // Restarted, it registers every task it holds again, in memory or not.
    await peer.proc.kill("SIGTERM");
    peer = await start();
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    const held = async (i: number) => {
      const st = await scheduler.taskStatus(taskIdFor({ url: url(i), filteredQueryParams: ["Expires", "Signature", "ns"] })).catch(() => undefined);
      return st?.peers.some((p) => p.hostname === "peer-1" && p.state === "succeeded") ?? false;
    };
    await until("every task registered again", async () => {
      for (let i = 0; i < TASKS; i++) if (!(await held(i))) return undefined;
      return true;
    });
    assert.equal(await metric(peer.metricsUrl, "kiln_peer_tasks"), TASKS);
    assert.ok((await metric(peer.metricsUrl, "kiln_peer_tasks_in_memory")) <= RESIDENT);
    await check(peer, 0);
    assert.equal(origin.requests.length, originRequests);
  });
});
