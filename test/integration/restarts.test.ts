/**
 * Components that restart in the middle of a download, real processes on loopback:
 * a seed peer killed while it fetches from the origin and started again under the
 * same host ID, within the scheduler's host timeout; the scheduler killed and started
 * again while a download is under way; a peer killed -9 while it fetches from the
 * origin (it resumes with a Range and If-Range from the pieces it kept; a changed
 * origin starts over) or from parents (it fetches only the pieces it lacks).
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { metric, TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { etagOf, makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/registry.js";
import { spawnKiln } from "../helpers/proc.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import { taskIdFor } from "../../src/common/task-id.js";
import type { TaskStatus } from "../../src/api/scheduler.js";

const MiB = 1024 * 1024;
/** The default piece length of the files below (24 MiB / 500, clamped to 4 MiB). */
const PIECE = 4 * MiB;
const sha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Verified pieces the peer last wrote down for the task: what a kill -9 leaves on disk. */
async function piecesOnDisk(dataDir: string, taskId: string): Promise<number> {
  const meta = await readFile(join(dataDir, "tasks", taskId, "meta.json"), "utf8").catch(() => undefined);
  return meta ? (JSON.parse(meta) as { pieces: unknown[] }).pieces.length : 0;
}

/**
 * Waits for the peer on `hostname` to hold `pieces` pieces of the task (as the scheduler
 * hears), then for up to 10 s for it to have written them down; then it may be killed.
 */
async function holding(scheduler: SchedulerClient, taskId: string, peer: PeerHandle, pieces: number): Promise<void> {
  await until(`${peer.name} holding ${pieces} pieces`, async () => {
    const st = await scheduler.taskStatus(taskId).catch(() => undefined);
    return st?.peers.some((p) => p.hostname === peer.name && p.finishedPieces >= pieces) ? true : undefined;
  });
  await until("them written down", async () => ((await piecesOnDisk(peer.dataDir, taskId)) >= pieces ? true : undefined), 10_000).catch(() => undefined);
}

/** A peer that can be started again on the same data directory and upload port (so under the same host ID). */
async function restartablePeer(cluster: TestCluster, name: string): Promise<{ peer: PeerHandle; restart: () => Promise<PeerHandle> }> {
  const port = await freePort();
  const dataDir = join(cluster.dir, name);
  const start = () => cluster.addPeer(name, { dataDir, args: ["--port", String(port)] });
  return { peer: await start(), restart: start };
}

describe("restarts mid-download", () => {
  let cluster: TestCluster | undefined;
  let origin: TestOrigin | undefined;
  after(async () => {
    await cluster?.stop();
    await origin?.close();
  });

  it("a seed peer restarted within the host timeout: its old peer is dropped at once, the download finishes right", async () => {
    origin = await startOrigin({ rateBytes: 8 * MiB });
    const file = makeFile(24 * MiB);
    origin.add("/files/restart.bin", file);
    const url = `${origin.url}/files/restart.bin`;
    // A host timeout far longer than the test: only the new process's announce can drop the old peer.
    cluster = await TestCluster.start({ schedulerArgs: ["--host-timeout-ms", "600000"] });
    const seedPort = await freePort();
    const seedDir = join(cluster.dir, "seed-1");
    const startSeed = () => cluster!.addPeer("seed-1", { seed: true, dataDir: seedDir, args: ["--port", String(seedPort)] });
    let seed: PeerHandle = await startSeed();
    const peer = await cluster.addPeer("peer-1");
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    const taskId = taskIdFor({ url, filteredQueryParams: ["Expires", "Signature", "ns"] });
    const out = join(cluster.dir, "restart.bin");
    const getting = cluster.get(peer, url, out);

    // The seed peer is fetching from the origin and holds a piece or more.
    const fetching = await until("the seed peer fetching from the origin", async () => {
      const st = await scheduler.taskStatus(taskId).catch(() => undefined);
      return st?.peers.find((p) => p.isSeed && p.state === "back_to_source" && p.finishedPieces > 0);
    });
    await seed.proc.kill("SIGKILL");
    seed = await startSeed();
    assert.equal(seed.uploadPort, seedPort, "same host ID as before");

    // The old process's peer leaves the task as soon as the new process announces itself.
    const gone = await until("the dead process's peer to leave the task", async () => {
      const st: TaskStatus | undefined = await scheduler.taskStatus(taskId).catch(() => undefined);
      return st && !st.peers.some((p) => p.peerId === fetching.peerId && p.state !== "left") ? st : undefined;
    });
    assert.ok(!gone.peers.some((p) => p.peerId === fetching.peerId));

    const got = await getting;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await sha256(out), file.sha256);
    // Somebody took the origin fetch over: the bytes before the kill plus at most one whole copy.
    assert.ok(origin.totalSent() < 2 * file.data.length, `origin sent ${origin.totalSent()} bytes for a ${file.data.length}-byte file`);
    assert.ok(seed.proc.lines.length > 0);
  });

  it("a scheduler restarted mid-download: the downloads register again with what they hold and go on; the origin sends the file once", async () => {
    await cluster?.stop();
    await origin?.close();
    origin = await startOrigin({ rateBytes: 8 * MiB });
    const file = makeFile(32 * MiB);
    origin.add("/files/scheduler-restart.bin", file);
    const url = `${origin.url}/files/scheduler-restart.bin`;
    const port = await freePort();
    cluster = await TestCluster.start({ schedulerArgs: ["--port", String(port)] });
    await cluster.addPeer("seed-1", { seed: true });
    const peer = await cluster.addPeer("peer-1");
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    const taskId = taskIdFor({ url, filteredQueryParams: ["Expires", "Signature", "ns"] });
    const out = join(cluster.dir, "scheduler-restart.bin");
    const getting = cluster.get(peer, url, out);
    await until("the seed peer fetching from the origin, the peer holding pieces from it", async () => {
      const st = await scheduler.taskStatus(taskId).catch(() => undefined);
      const seedFetching = st?.peers.some((p) => p.isSeed && p.state === "back_to_source" && p.finishedPieces > 0);
      return seedFetching && st?.peers.some((p) => !p.isSeed && p.finishedPieces > 0) ? true : undefined;
    });
    await cluster.scheduler.kill("SIGKILL");
    cluster.scheduler = await spawnKiln(["scheduler", "--host", "127.0.0.1", "--port", String(port)]);

    // Both downloads are back on the new scheduler, with the pieces they hold and the seed still the origin fetcher.
    const back = await until("the downloads to register again", async () => {
      const st = await scheduler.taskStatus(taskId).catch(() => undefined);
      return st && st.peers.length === 2 ? st : undefined;
    });
    const seedPeer = back.peers.find((p) => p.isSeed)!;
    assert.ok(seedPeer.state === "back_to_source" || seedPeer.state === "succeeded", JSON.stringify(back));
    assert.ok(
      back.peers.every((p) => p.finishedPieces > 0),
      JSON.stringify(back),
    );

    const got = await getting;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await sha256(out), file.sha256);
    assert.equal(origin.totalSent(), file.data.length, "the origin sent the file once: nobody started the fetch over");
    // The next peer finds the task on the new scheduler and gets it from the swarm.
    const next = await cluster.addPeer("peer-2");
    const again = await cluster.get(next, url, join(cluster.dir, "again.bin"));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(origin.totalSent(), file.data.length, "served by the swarm");
  });
  /**
   * No seed peer, so the peer fetches from the origin itself; the origin stops after two
   * pieces (connection open) and the peer is killed -9 once it has written them down.
   */
  async function killWhileFetchingFromOrigin(name: string) {
    await cluster?.stop();
    await origin?.close();
    origin = await startOrigin({ etags: true });
    const file = makeFile(24 * MiB);
    const path = `/files/${name}.bin`;
    origin.add(path, file);
    const url = `${origin.url}${path}`;
    origin.hold(path, 2 * PIECE);
    cluster = await TestCluster.start();
    const { peer, restart } = await restartablePeer(cluster, "peer-1");
    const taskId = taskIdFor({ url, filteredQueryParams: ["Expires", "Signature", "ns"] });
    const out = join(cluster.dir, `${name}.out`);
    const cutOff = cluster.get(peer, url, out);
    await holding(new SchedulerClient(cluster.schedulerUrl), taskId, peer, 2);
    await peer.proc.kill("SIGKILL");
    assert.notEqual((await cutOff).code, 0, "the download in progress went with the peer");
    const asked = () => origin!.requests.filter((r) => r.path === path);
    return { file, path, url, out, restart, asked };
  }

  it("a peer killed -9 while it fetches from the origin resumes after its restart from the pieces it kept: a Range with If-Range, no byte sent twice", async () => {
    const { file, url, out, restart, asked } = await killWhileFetchingFromOrigin("origin-resume");
    const peer = await restart();
    const got = await cluster!.get(peer, url, out);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await sha256(out), file.sha256);
    assert.equal(asked().length, 2, "one request before the kill, one after");
    assert.equal(asked()[1]!.headers.range, `bytes=${2 * PIECE}-`, "resumed after the two pieces it kept");
    assert.equal(asked()[1]!.headers["if-range"], etagOf(file), "against the version they came from");
    assert.equal(origin!.totalSent(), file.data.length, "the origin sent no byte twice");
  });

  it("a peer killed -9 while it fetches from the origin, which changes meanwhile: the resume gets the new version whole, nothing of the two is put together, and the download starts over", async () => {
    const { file, path, url, out, restart, asked } = await killWhileFetchingFromOrigin("origin-changed");
    const changed = makeFile(24 * MiB);
    origin!.add(path, changed);
    const peer = await restart();
    const first = await cluster!.get(peer, url, out);
    assert.notEqual(first.code, 0, "the pieces kept are of the old version: this download fails");
    assert.match(first.stderr, /origin content changed/);
    assert.equal(asked()[1]!.headers["if-range"], etagOf(file));
    const again = await cluster!.get(peer, url, out);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await sha256(out), changed.sha256, "the new version, whole");
    assert.equal(asked().at(-1)!.headers.range, undefined, "started over from the first byte");
  });

  it("a peer killed -9 while it fetches from parents keeps its verified pieces after its restart and fetches only the ones it lacks", async () => {
    await cluster?.stop();
    await origin?.close();
    origin = await startOrigin({ etags: true });
    const file = makeFile(24 * MiB);
    const path = "/files/p2p-resume.bin";
    origin.add(path, file);
    const url = `${origin.url}${path}`;
    // The seed peer's origin answer stops after two pieces; the peer gets those two from it.
    const release = origin.hold(path, 2 * PIECE);
    cluster = await TestCluster.start();
    const seed = await cluster.addPeer("seed-1", { seed: true });
    const { peer, restart } = await restartablePeer(cluster, "peer-1");
    const taskId = taskIdFor({ url, filteredQueryParams: ["Expires", "Signature", "ns"] });
    const out = join(cluster.dir, "p2p-resume.out");
    const cutOff = cluster.get(peer, url, out);
    await holding(new SchedulerClient(cluster.schedulerUrl), taskId, peer, 2);
    await peer.proc.kill("SIGKILL");
    await cutOff;

    const again = await restart();
    release();
    const got = await cluster.get(again, url, out);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await sha256(out), file.sha256);
    assert.equal(origin.totalSent(), file.data.length, "the seed peer fetched the file once");
    assert.equal(
      await metric(seed.metricsUrl, "kiln_peer_upload_bytes_total"),
      file.data.length,
      "each piece went to the peer once: the two it kept were not fetched again",
    );
  });
});
