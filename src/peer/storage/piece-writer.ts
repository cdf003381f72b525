/**
 * Writes one piece at its offset as its bytes arrive: each chunk is hashed once
 * and written once, in batches with one `pwritev` (the chunks themselves, no
 * concatenation), while more arrive. `write` says when the producer should wait.
 */
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { KilnError, isDiskFull } from "../../common/errors.js";
import { releaseView, retainView } from "../blocks.js";

/** Bytes collected before a write is issued: origin chunks are ~64 KiB, so one syscall for 16 of them. */
const WRITE_BATCH = 1024 * 1024;
/** Bytes collected or being written above which the producer is asked to wait. */
const HIGH_WATER = 4 * WRITE_BATCH;

/** Sees every chunk of a piece as it arrives (the content hasher), and how the piece ended. */
export interface PieceObserver {
  chunk(piece: number, offset: number, chunk: Buffer): void;
  abandoned(piece: number): void;
}

export interface WrittenPiece {
  length: number;
  digest: string;
}

export class PieceWriter {
  private readonly hash = createHash("sha256");
  private length = 0;
  private queue: Buffer[] = [];
  private queued = 0;
  /** Bytes handed to the file but not written yet. */
  private pending = 0;
  private offset: number;
  private writes: Promise<void> = Promise.resolve();
  private error: unknown;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    readonly piece: number,
    private readonly start: number,
    /** Longer than this, the piece is wrong whatever its digest. */
    private readonly maxLength: number,
    private readonly observer?: PieceObserver,
  ) {
    this.offset = start;
  }

  /** Takes a chunk; false when the producer should wait for `drained()`. Throws when the piece is too long or a write failed. */
  write(chunk: Buffer): boolean {
    if (this.error) throw this.error;
    if (this.length + chunk.length > this.maxLength) throw new KilnError("DIGEST_MISMATCH", `piece ${this.piece} is longer than expected`);
    this.observer?.chunk(this.piece, this.start + this.length, chunk);
    this.length += chunk.length;
    this.hash.update(chunk);
    // A view of a shared block (the piece client's) stays untouched until written.
    retainView(chunk);
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.queued >= WRITE_BATCH) this.submit();
    return this.queued + this.pending < HIGH_WATER;
  }

  /** Resolves once the bytes waiting for the disk are below the high-water mark (or a write failed). */
  drained(): Promise<void> {
    if (this.error || this.queued + this.pending < HIGH_WATER) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Writes what is left; resolves with the piece's length and digest, for the caller to verify. */
  async end(): Promise<WrittenPiece> {
    if (this.queued) this.submit();
    this.closed = true;
    await this.writes;
    if (this.error) {
      this.observer?.abandoned(this.piece);
      throw this.error;
    }
    return { length: this.length, digest: `sha256:${this.hash.digest("hex")}` };
  }

  /**
   * Gives the piece up: nothing more is written, and this resolves once no write of
   * it is in flight, so a retry of the piece can never be overwritten by this one.
   */
  async abort(): Promise<void> {
    for (const chunk of this.queue.splice(0)) releaseView(chunk);
    this.queued = 0;
    this.error ??= new KilnError("INTERNAL", `piece ${this.piece} abandoned`);
    if (!this.closed) this.observer?.abandoned(this.piece);
    this.closed = true;
    await this.writes;
  }

  private submit(): void {
    const buffers = this.queue;
    const bytes = this.queued;
    const position = this.offset;
    this.queue = [];
    this.queued = 0;
    this.offset += bytes;
    this.pending += bytes;
    this.writes = this.writes
      .then(() => (this.error ? undefined : writeAll(this.fh, buffers, position)))
      .catch((err: unknown) => {
        this.error ??= diskError(err);
      })
      .then(() => {
        for (const chunk of buffers) releaseView(chunk);
        this.pending -= bytes;
        if (this.error || this.queued + this.pending < HIGH_WATER) for (const wake of this.waiters.splice(0)) wake();
      });
  }
}

async function writeAll(fh: FileHandle, chunks: readonly Buffer[], position: number): Promise<void> {
  const buffers = [...chunks];
  for (;;) {
    const { bytesWritten } = await fh.writev(buffers, position);
    let left = bytesWritten;
    // A short write (rare on a regular file): drop what was written and go on.
    while (buffers.length && left >= buffers[0]!.length) left -= buffers.shift()!.length;
    if (!buffers.length) return;
    buffers[0] = buffers[0]!.subarray(left);
    position += bytesWritten;
  }
}

export function diskError(err: unknown): unknown {
  return isDiskFull(err) ? new KilnError("DISK_FULL", "no space left on device (ENOSPC) in the peer's data directory") : err;
}
