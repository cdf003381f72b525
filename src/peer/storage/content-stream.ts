/**
 * Streams a task's bytes in order while it downloads. With a known length the
 * last bytes are held back until the whole task succeeded (blob digest included),
 * so a reader never receives complete-looking content that failed verification.
 */
import { Readable } from "node:stream";
import { open, type FileHandle } from "node:fs/promises";
import type { StoredTask } from "./stored-task.js";

export interface ByteRange {
  start: number;
  /** Exclusive. */
  end: number;
}

/** Bytes read (and pushed) at once: one `pread` per MiB, whatever the piece length. */
const BLOCK = 1024 * 1024;

export function contentStream(task: StoredTask, done: Promise<void>, range?: ByteRange): Readable {
  return new ContentStream(task, done, range);
}

class ContentStream extends Readable {
  private readonly release: () => void;
  private pos: number;
  private fh: FileHandle | undefined;
  private laidOut = false;

  constructor(
    private readonly task: StoredTask,
    private readonly done: Promise<void>,
    private readonly range: ByteRange | undefined,
  ) {
    super();
    this.release = task.acquire();
    this.pos = range?.start ?? 0;
  }

  override _read(): void {
    this.next().then(
      (chunk) => this.push(chunk),
      (err: unknown) => this.destroy((this.task.failure ?? err) as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.release();
    const fh = this.fh;
    this.fh = undefined;
    void (fh?.close() ?? Promise.resolve()).catch(() => undefined).then(() => cb(err));
  }

  /** The next block of verified bytes, or null at the end (once the task succeeded). */
  private async next(): Promise<Buffer | null> {
    const task = this.task;
    if (!this.laidOut) {
      await task.waitForLayout();
      this.laidOut = true;
    }
    const pieceLength = task.meta.pieceLength;
    if (pieceLength === null) return this.finish();
    const end = Math.min(this.range?.end ?? Infinity, task.meta.contentLength ?? Infinity);
    if (this.pos >= end) return this.finish();
    const n = Math.floor(this.pos / pieceLength);
    const finished = await Promise.race([task.waitForPiece(n).then(() => false), this.done.then(() => true)]);
    if (finished && !task.hasPiece(n)) return this.finish();
    const total = task.totalPieces;
    const pieceEnd = n * pieceLength + task.piece(n)!.length;
    const stop = Math.min(pieceEnd, end);
    // The last piece waits for the whole task to be verified.
    if ((total !== null && n === total - 1) || pieceEnd >= end) await this.done;
    if (!this.fh) {
      const fh = await open(task.contentPath, "r");
      // A reader that hung up while the file was opening: _destroy saw no handle to close.
      if (this.destroyed) {
        await fh.close();
        return null;
      }
      this.fh = fh;
    }
    const block = Buffer.allocUnsafeSlow(Math.min(BLOCK, stop - this.pos));
    const { bytesRead } = await this.fh.read(block, 0, block.length, this.pos);
    if (bytesRead === 0) throw new Error(`content ends at ${this.pos}`);
    this.pos += bytesRead;
    task.touch();
    return bytesRead === block.length ? block : block.subarray(0, bytesRead);
  }

  private async finish(): Promise<null> {
    await this.done;
    return null;
  }
}
