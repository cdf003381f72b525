/**
 * A byte range of a stored file as a stream that reads a block only when its
 * consumer asks for one. Unlike fs.ReadStream it reads nothing ahead
 * (highWaterMark 0): a client that reads slowly holds just the block being
 * written to its socket, however many clients read at once.
 */
import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";

export class FileRangeStream extends Readable {
  private position: number;

  /** Takes over `file` (closed when the stream ends or is destroyed); reads `[start, end)` in blocks of `blockBytes`. */
  constructor(
    private readonly file: FileHandle,
    start: number,
    private readonly end: number,
    private readonly blockBytes: number,
  ) {
    super({ highWaterMark: 0 });
    this.position = start;
  }

  override _read(): void {
    const size = Math.min(this.blockBytes, this.end - this.position);
    if (size <= 0) return void this.push(null);
    const block = Buffer.allocUnsafe(size);
    this.file.read(block, 0, size, this.position).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) return void this.destroy(new Error(`the stored file ended at byte ${this.position}, before ${this.end}`));
        this.position += bytesRead;
        this.push(block.subarray(0, bytesRead));
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.file.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}
