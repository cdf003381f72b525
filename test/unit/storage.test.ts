/**
 * A peer's storage across many tasks and across restarts: the metadata of at most
 * `residentTasks` tasks stays in memory while every task stays on disk, readable and
 * collectable; a download cut short keeps its verified pieces and origin version.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Storage, type EvictedTask } from "../../src/peer/storage/storage.js";
import type { StoredTask } from "../../src/peer/storage/stored-task.js";
import { TaskMeta } from "../../src/peer/storage/task-meta.js";
import { Content, silentLog } from "../helpers/download-fakes.js";

const PIECE = 64 * 1024;
const HOUR = 60 * 60_000;

const taskId = (n: number) => n.toString(16).padStart(64, "0");
const identity = { url: "http://o.test/x", tag: "", application: "", explicitPieceLength: null };

async function writePiece(t: StoredTask, content: Content, n: number): Promise<void> {
  const w = t.pieceWriter(n, content.pieces[n]);
  w.write(content.piece(n));
  t.commitPiece(n, await w.end(), content.pieces[n]);
}

/** A complete task `n` holding `content`, flushed. */
async function completeTask(storage: Storage, n: number, content: Content): Promise<StoredTask> {
  const t = await storage.create(taskId(n), identity);
  await t.setLayout(content.data.length, content.pieceLength);
  for (let i = 0; i < content.pieces.length; i++) await writePiece(t, content, i);
  t.meta.peerId = `host-a_${n}`;
  await t.markComplete(content.data.length);
  await t.whenPersisted();
  return t;
}

const metaOf = async (storage: Storage, id: string) => TaskMeta.parse(JSON.parse(await readFile(join(storage.tasksDir, id, "meta.json"), "utf8")));

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("storage", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), "kiln-storage-"));
    dirs.push(d);
    return d;
  };

  it("keeps the metadata of at most residentTasks tasks in memory; the others are read back from disk, and GC still finds them", async () => {
    const dir = await tempDir();
    const evicted: EvictedTask[] = [];
    const storage = new Storage(dir, silentLog, (t) => evicted.push(t), { residentTasks: 3 });
    await storage.load();
    const contents = Array.from({ length: 10 }, () => new Content(randomBytes(2 * PIECE + 100), PIECE));
    for (const [n, c] of contents.entries()) await completeTask(storage, n, c);

    assert.equal(storage.inMemory().length, 3, "only the three most recently used are in memory");
    assert.deepEqual(
      storage.inMemory().map((t) => t.taskId),
      [7, 8, 9].map(taskId),
    );
    assert.equal(storage.count(), 10);
    const total = contents.reduce((n, c) => n + c.data.length, 0);
    assert.equal(storage.usedBytes(), total);

    // An old one is not in memory, but is read back whole; reading it pushes another out.
    assert.equal(storage.get(taskId(0)), undefined);
    const back = await storage.open(taskId(0));
    assert.equal(back?.complete, true);
    assert.deepEqual(await readFile(back!.contentPath), contents[0]!.data);
    assert.equal(await storage.open(taskId(0)), back, "one object per task");
    assert.equal(storage.inMemory().length, 3);
    assert.equal(storage.usedBytes(), total);

    // A task in use never leaves memory, however many come after it.
    const release = back!.acquire();
    for (const n of [1, 2, 3, 4]) await storage.open(taskId(n));
    assert.ok(storage.get(taskId(0)), "the pinned task is still in memory");
    release();

    // Watermarks evict least recently used tasks, in memory or not, down to the low mark.
    const quota = { taskTtlMs: 24 * HOUR, highWatermarkPercent: 90, lowWatermarkPercent: 50 };
    await storage.collectGarbage({ ...quota, quotaBytes: Math.floor(total / 0.95) });
    assert.ok(storage.usedBytes() <= 0.5 * Math.floor(total / 0.95), `used ${storage.usedBytes()}`);
    assert.equal(storage.count(), 10 - evicted.length);
    for (const e of evicted) assert.equal(e.peerId, `host-a_${Number.parseInt(e.taskId, 16)}`, "the scheduler registration is known for a task not in memory");

    // The TTL takes the rest, in memory or not, and the scheduler hears of each.
    await storage.collectGarbage({ ...quota, taskTtlMs: HOUR }, Date.now() + 2 * HOUR);
    assert.equal(storage.count(), 0);
    assert.equal(storage.usedBytes(), 0);
    assert.deepEqual(evicted.map((e) => e.taskId).sort(), contents.map((_, n) => taskId(n)).sort());
  });

  it("a restart keeps completed tasks (the most recently used in memory) and downloads cut short with their verified pieces and origin version", async () => {
    const dir = await tempDir();
    const storage = new Storage(dir, silentLog, () => undefined, { residentTasks: 2 });
    await storage.load();
    for (let n = 0; n < 4; n++) await completeTask(storage, n, new Content(randomBytes(PIECE + 1), PIECE));
    const content = new Content(randomBytes(6 * PIECE + 500), PIECE);
    const partial = await storage.create(taskId(100), identity);
    await partial.setLayout(content.data.length, content.pieceLength);
    partial.meta.validator = '"v1"';
    for (const n of [0, 1, 2, 4]) await writePiece(partial, content, n);
    // Written in the background, as a kill -9 would find it.
    await until("the progress on disk", async () => (await metaOf(storage, taskId(100)).catch(() => undefined))?.pieces.length === 4);
    // Piece 4 never reached the disk before the crash.
    const torn = Buffer.from(content.data);
    torn.fill(0, 4 * PIECE, 5 * PIECE);
    await writeFile(partial.contentPath, torn);

    const again = new Storage(dir, silentLog, () => undefined, { residentTasks: 2 });
    await again.load();
    assert.equal(again.count(), 5);
    assert.equal(again.inMemory().length, 2);
    const resumed = await again.open(taskId(100));
    assert.ok(resumed, "the download cut short is kept");
    assert.equal(resumed.complete, false);
    assert.deepEqual(
      resumed.pieces().map((p) => p.number),
      [0, 1, 2],
      "with the pieces that still check",
    );
    assert.equal(resumed.meta.validator, '"v1"');
    assert.equal(resumed.meta.contentLength, content.data.length);

    // It goes on where it was: the missing pieces, then complete, content right.
    await resumed.resume();
    for (const n of [3, 4, 5, 6]) await writePiece(resumed, content, n);
    await resumed.markComplete(content.data.length);
    assert.deepEqual(await readFile(resumed.contentPath), content.data);
    await again.flush();
  });

  it("a complete task whose content file was written to afterwards (a hard-linked output edited) is dropped, not served, now and after a restart", async () => {
    const dir = await tempDir();
    const evicted: EvictedTask[] = [];
    const storage = new Storage(dir, silentLog, (t) => evicted.push(t), { residentTasks: 4 });
    await storage.load();
    const content = new Content(randomBytes(3 * PIECE), PIECE);
    const kept = await completeTask(storage, 1, content);
    const edited = await completeTask(storage, 2, content);
    const editedAway = await completeTask(storage, 3, content);
    assert.equal(await storage.intact(kept), true, "untouched: intact");
    assert.equal((await metaOf(storage, taskId(1))).contentMtimeNs, kept.meta.contentMtimeNs, "the stamp is saved with the metadata");

    // What an editor writing through a hard link does to the stored file (mtime ticks are coarse: make the change visible).
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(edited.contentPath, Buffer.alloc(content.data.length, 0x5a));
    assert.equal(await storage.intact(edited), false);
    assert.equal(await storage.open(taskId(2)), undefined, "the edited task is gone from the storage");
    assert.deepEqual(
      evicted.map((t) => t.taskId),
      [taskId(2)],
      "and the scheduler is told, as for an eviction",
    );
    assert.equal(await storage.intact(kept), true, "the other task is untouched");

    // Edited while the peer was down: not loaded back.
    await writeFile(editedAway.contentPath, Buffer.alloc(content.data.length, 0x5a));
    const again = new Storage(dir, silentLog, () => undefined, { residentTasks: 4 });
    await again.load();
    assert.equal(await again.open(taskId(3)), undefined, "an edited task is not loaded after a restart");
    const back = await again.open(taskId(1));
    assert.ok(back?.complete);
    assert.equal(await again.intact(back), true);
    assert.deepEqual(await readFile(back.contentPath), content.data);
  });
});
