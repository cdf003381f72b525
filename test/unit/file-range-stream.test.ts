/**
 * The stored-file stream behind a warm proxy answer: exactly the asked range, one
 * block read per block the consumer takes (no read-ahead, so a slow client holds one
 * block), and the file closed however the stream ends.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { FileRangeStream } from "../../src/peer/proxy/file-range-stream.js";

const BLOCK = 64 * 1024;

/** `file` with its reads counted and its closing seen. */
function counted(file: FileHandle) {
  const stats = { reads: 0, closed: false };
  const handle = {
    read: (...args: Parameters<FileHandle["read"]>) => {
      stats.reads++;
      return file.read(...args);
    },
    close: async () => {
      stats.closed = true;
      await file.close();
    },
  } as unknown as FileHandle;
  return { handle, stats };
}

describe("FileRangeStream", () => {
  let dir: string;
  let path: string;
  const content = randomBytes(10 * BLOCK + 123);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-file-range-"));
    path = join(dir, "content");
    await writeFile(path, content);
  });

  after(() => rm(dir, { recursive: true, force: true }));

  async function readAll(start: number, end: number) {
    const { handle, stats } = counted(await open(path, "r"));
    const chunks: Buffer[] = [];
    for await (const c of new FileRangeStream(handle, start, end, BLOCK)) chunks.push(c as Buffer);
    return { body: Buffer.concat(chunks), chunks, stats };
  }

  it("yields exactly [start, end) in blocks, then closes the file", async () => {
    for (const [start, end] of [
      [0, content.length],
      [BLOCK - 7, 3 * BLOCK + 5],
      [content.length - 1, content.length],
      [42, 42],
    ] as const) {
      const r = await readAll(start, end);
      assert.ok(r.body.equals(content.subarray(start, end)), `bytes ${start}-${end}`);
      assert.ok(
        r.chunks.every((c) => c.length <= BLOCK),
        "no chunk over a block",
      );
      assert.equal(r.stats.closed, true, "file closed at the end");
    }
  });

  it("reads a block only when the consumer takes one: a stalled consumer holds one block, not the file", async () => {
    const { handle, stats } = counted(await open(path, "r"));
    const stream = new FileRangeStream(handle, 0, content.length, BLOCK);
    let release!: () => void;
    let taken = 0;
    // A consumer that takes one block, then stalls until released (as a socket whose client stopped reading).
    const stalled = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, done) {
        taken += chunk.length;
        if (taken === chunk.length) release = done;
        else done();
      },
    });
    const piping = pipeline(stream, stalled);
    while (!release) await sleep(5);
    await sleep(100);
    assert.equal(stats.reads, 1, "only the block being written was read (fs.ReadStream would have read one more ahead)");
    release();
    await piping;
    assert.equal(taken, content.length);
    assert.equal(stats.closed, true);
  });

  it("destroyed mid-way (the client went away): the file is closed", async () => {
    const { handle, stats } = counted(await open(path, "r"));
    const stream = new FileRangeStream(handle, 0, content.length, BLOCK);
    for await (const _ of stream) break;
    await sleep(10);
    assert.equal(stats.closed, true);
  });

  it("a stored file shorter than the range: an error, not a short body taken for complete", async () => {
    const { handle, stats } = counted(await open(path, "r"));
    const stream = new FileRangeStream(handle, content.length - 10, content.length + 10, BLOCK);
    await assert.rejects(
      (async () => {
        for await (const _ of stream);
      })(),
      /ended at byte/,
    );
    assert.equal(stats.closed, true);
  });
});
