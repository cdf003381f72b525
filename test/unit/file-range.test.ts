/**
 * The stored-file writer behind a warm proxy answer: exactly the asked range, one
 * block read per write the socket has taken (a stalled client holds one block, no
 * read-ahead), and a client that goes away ends it with ClientGoneError.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { ClientGoneError, writeFileRange } from "../../src/peer/proxy/file-range.js";

const BLOCK = 64 * 1024;

/** `file` with its reads counted. */
function counted(file: FileHandle) {
  const stats = { reads: 0 };
  const handle = {
    read: (...args: Parameters<FileHandle["read"]>) => {
      stats.reads++;
      return file.read(...args);
    },
  } as unknown as FileHandle;
  return { handle, stats };
}

/** A socket-like sink; `stall` holds the write callback of every write after the first until released. */
function sink(opts: { stall?: boolean } = {}) {
  const chunks: Buffer[] = [];
  const held: (() => void)[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      // A copy: the writer may reuse its block once the write is done.
      chunks.push(Buffer.from(chunk));
      if (opts.stall && chunks.length > 1) held.push(done);
      else done();
    },
  });
  return { out, chunks, held, body: () => Buffer.concat(chunks) };
}

describe("writeFileRange", () => {
  let dir: string;
  let path: string;
  const content = randomBytes(10 * BLOCK + 123);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-file-range-"));
    path = join(dir, "content");
    await writeFile(path, content);
  });

  after(() => rm(dir, { recursive: true, force: true }));

  it("writes exactly [start, end) in blocks, and counts what the socket took", async () => {
    for (const [start, end] of [
      [0, content.length],
      [BLOCK - 7, 3 * BLOCK + 5],
      [content.length - 1, content.length],
      [42, 42],
    ] as const) {
      const fh = await open(path, "r");
      const s = sink();
      let counted = 0;
      await writeFileRange(s.out, fh, start, end, Buffer.alloc(BLOCK), (n) => (counted += n)).finally(() => fh.close());
      assert.ok(s.body().equals(content.subarray(start, end)), `bytes ${start}-${end}`);
      assert.ok(
        s.chunks.every((c) => c.length <= BLOCK),
        "no write over a block",
      );
      assert.equal(counted, end - start);
    }
  });

  it("reads the next block only once the socket has taken the last write: a stalled client holds one block", async () => {
    const fh = await open(path, "r");
    const { handle, stats } = counted(fh);
    const s = sink({ stall: true });
    const writing = writeFileRange(s.out, handle, 0, content.length, Buffer.alloc(BLOCK), () => undefined);
    while (s.held.length === 0) await sleep(5);
    await sleep(100);
    assert.equal(stats.reads, 2, "the first block, then the second, whose write is held: nothing read ahead");
    for (;;) {
      const done = s.held.shift();
      if (done) done();
      else if (s.body().length === content.length) break;
      else await sleep(1);
    }
    await writing;
    await fh.close();
    assert.ok(s.body().equals(content));
  });

  it("a client that goes away mid-way: ClientGoneError, nothing more read", async () => {
    const fh = await open(path, "r");
    const { handle, stats } = counted(fh);
    const s = sink({ stall: true });
    const writing = writeFileRange(s.out, handle, 0, content.length, Buffer.alloc(BLOCK), () => undefined);
    while (s.held.length === 0) await sleep(5);
    s.out.destroy();
    await assert.rejects(writing, ClientGoneError);
    const reads = stats.reads;
    await sleep(50);
    assert.equal(stats.reads, reads);
    await fh.close();
  });

  it("a stored file shorter than the range: an error, not a short body taken for complete", async () => {
    const fh = await open(path, "r");
    await assert.rejects(
      writeFileRange(sink().out, fh, content.length - 10, content.length + 10, Buffer.alloc(BLOCK), () => undefined),
      /ended at byte/,
    );
    await fh.close();
  });
});
