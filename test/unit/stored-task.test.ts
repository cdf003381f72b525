/** A task's storage on its own: pieces written from streams, verified, and the whole-content digest computed as they arrive. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { KilnError } from "../../src/common/errors.js";
import { Storage } from "../../src/peer/storage/storage.js";
import type { StoredTask } from "../../src/peer/storage/stored-task.js";
import type { PieceInfo } from "../../src/api/scheduler.js";
import { Content, silentLog, tempStorage } from "../helpers/download-fakes.js";

const PIECE = 256 * 1024;

/** A piece's bytes as a socket would deliver them: in chunks of `size`. */
function chunked(bytes: Buffer, size = 16 * 1024): Buffer[] {
  const parts: Buffer[] = [];
  for (let off = 0; off < bytes.length; off += size) parts.push(bytes.subarray(off, off + size));
  return parts;
}

/** Writes piece `n` chunk by chunk (yielding between chunks, as a socket would), then verifies and stores it. */
async function writePiece(t: StoredTask, n: number, chunks: Buffer[], expected?: PieceInfo) {
  const w = t.pieceWriter(n, expected);
  try {
    for (const c of chunks) {
      if (!w.write(c)) await w.drained();
      await new Promise((r) => setImmediate(r));
    }
  } catch (err) {
    await w.abort();
    throw err;
  }
  return t.commitPiece(n, await w.end(), expected);
}

describe("stored task", () => {
  let storage: Storage;
  let cleanup: () => Promise<void>;
  before(async () => ({ storage, cleanup } = await tempStorage()));
  after(() => cleanup());

  let seq = 0;
  async function task(content: Content, hash: boolean): Promise<StoredTask> {
    const t = await storage.create((++seq).toString(16).padStart(64, "0"), { url: "http://o.test/x", tag: "", application: "", explicitPieceLength: null });
    if (hash) t.hashContent();
    await t.setLayout(content.data.length, content.pieceLength);
    return t;
  }

  it("pieces written in any order land at their offsets; the content digest is right without a full re-read", async () => {
    const content = new Content(randomBytes(9 * PIECE + 1000), PIECE);
    const t = await task(content, true);
    // In order, then out of order (ahead of the running hash), then the gap closes.
    for (const n of [0, 1, 5, 6, 9, 2, 3, 4, 8, 7]) await writePiece(t, n, chunked(content.piece(n)), content.pieces[n]);
    assert.equal(await t.contentDigest(), content.digest);
    await t.markComplete(content.data.length);
    assert.deepEqual(await readFile(t.contentPath), content.data);
  });

  it("pieces written concurrently, some failing their digest half-way, leave the content digest right", async () => {
    const content = new Content(randomBytes(8 * PIECE), PIECE);
    const t = await task(content, true);
    const bad = (n: number) => {
      const b = Buffer.from(content.piece(n));
      b[b.length - 1] = b[b.length - 1]! ^ 0xff; // wrong only at the very end: the hash has taken every other byte by then
      return b;
    };
    // Piece 0 arrives wrong first (after feeding the running hash), then right.
    await assert.rejects(writePiece(t, 0, chunked(bad(0)), content.pieces[0]), (e: KilnError) => e.code === "DIGEST_MISMATCH");
    assert.equal(t.hasPiece(0), false, "a wrong piece is never stored");
    await Promise.all([0, 1, 2, 3].map((n) => writePiece(t, n, chunked(content.piece(n)), content.pieces[n])));
    // Piece 4 fails mid-way (the parent went away), then arrives whole.
    const broken = t.pieceWriter(4, content.pieces[4]);
    broken.write(content.piece(4).subarray(0, 100 * 1024));
    await broken.abort();
    assert.equal(t.hasPiece(4), false);
    await Promise.all([4, 5, 6, 7].map((n) => writePiece(t, n, chunked(content.piece(n), 7_000), content.pieces[n])));
    assert.equal(await t.contentDigest(), content.digest);
    assert.deepEqual(await readFile(t.contentPath), content.data);
  });

  it("a piece longer than expected is refused as it arrives; a short one when it ends", async () => {
    const content = new Content(randomBytes(2 * PIECE), PIECE);
    const t = await task(content, false);
    const long = Buffer.concat([content.piece(0), Buffer.alloc(10)]);
    await assert.rejects(writePiece(t, 0, chunked(long), content.pieces[0]), /longer than expected/);
    await assert.rejects(writePiece(t, 1, chunked(content.piece(1).subarray(1)), content.pieces[1]), /bytes, expected|does not match/);
    assert.equal(t.finishedPieces, 0);
  });

  it("without a known digest a piece is stored under the digest of what arrived (the origin fetcher's case)", async () => {
    const content = new Content(randomBytes(PIECE + 5), PIECE);
    const t = await task(content, false);
    const info = await writePiece(t, 1, chunked(content.piece(1)));
    assert.deepEqual(info, content.pieces[1]);
  });

  it("a completed task is complete at once and durable once flushed; after a crash before that, it is kept only if its content still checks", async () => {
    const content = new Content(randomBytes(3 * PIECE + 7), PIECE);
    const good = await task(content, false);
    const torn = await task(content, false);
    for (const t of [good, torn]) {
      for (const n of [0, 1, 2, 3]) await writePiece(t, n, chunked(content.piece(n)));
      await t.markComplete(content.data.length);
      assert.equal(t.complete, true);
    }
    await good.whenPersisted();
    const meta = (t: StoredTask) => readFile(join(t.dir, "meta.json"), "utf8").then((m) => JSON.parse(m) as { complete: boolean; durable: boolean });
    assert.deepEqual([(await meta(good)).complete, (await meta(good)).durable], [true, true]);
    // As a crash would leave them: metadata saying complete but not yet flushed; one content file torn.
    await torn.whenPersisted();
    for (const t of [good, torn]) await writeFile(join(t.dir, "meta.json"), JSON.stringify({ ...(await meta(t)), durable: false }));
    const torn2 = Buffer.from(content.data);
    torn2.fill(0, PIECE, PIECE + 100);
    await writeFile(torn.contentPath, torn2);
    const reloaded = new Storage(storage.dataDir, silentLog);
    await reloaded.load();
    assert.equal(reloaded.get(good.taskId)?.complete, true, "the intact task is kept");
    assert.equal(reloaded.get(torn.taskId), undefined, "the torn one is dropped");
    await reloaded.get(good.taskId)!.whenPersisted();
    assert.equal((await meta(good)).durable, true, "and the kept one is flushed and marked durable");
  });
});
