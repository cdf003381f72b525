/**
 * The sha256 of a task's whole content (an OCI blob's digest), computed while the
 * pieces arrive instead of by re-reading the file at the end. Bytes received at
 * the hash's running position are hashed from memory as they arrive (in order, as
 * from the origin); pieces that arrived ahead of it are read back from the file
 * once the position reaches them and they are verified. A piece that fails or is
 * abandoned after feeding the hash rolls it back to that piece's start.
 */
import { createHash, type Hash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import type { PieceObserver } from "./piece-writer.js";

/** What the hasher needs to know about the task. */
export interface HashedContent {
  readonly pieceLength: number;
  contentLength(): number | null;
  hasPiece(n: number): boolean;
  file(): Promise<FileHandle>;
}

const READ_BLOCK = 1024 * 1024;

export class ContentHasher implements PieceObserver {
  private hash = createHash("sha256");
  /** Bytes hashed so far: [0, pos) of the content. */
  private pos = 0;
  /** Hash state at the start of each piece fed from the wire and not yet verified. */
  private readonly marks = new Map<number, Hash>();
  private catchingUp: Promise<void> | undefined;
  private buffer: Buffer | undefined;

  constructor(private readonly content: HashedContent) {}

  chunk(piece: number, offset: number, chunk: Buffer): void {
    if (offset !== this.pos || this.catchingUp) return;
    if (offset === piece * this.content.pieceLength) this.marks.set(piece, this.hash.copy());
    else if (!this.marks.has(piece)) return;
    this.hash.update(chunk);
    this.pos += chunk.length;
  }

  /** Piece `n` failed or was given up: whatever it fed is taken back. */
  abandoned(n: number): void {
    const mark = this.marks.get(n);
    if (!mark) return;
    this.hash = mark;
    this.pos = n * this.content.pieceLength;
    for (const k of this.marks.keys()) if (k >= n) this.marks.delete(k);
  }

  /** Piece `n` is verified and stored. */
  verified(n: number): void {
    this.marks.delete(n);
    void this.catchUp().catch(() => undefined);
  }

  /** `sha256:<hex>` of the content, once every piece is verified (reads back what it has not seen). */
  async digest(): Promise<string> {
    // A pass already running may have stopped short of a piece verified since; run a fresh one after it.
    await this.catchingUp;
    await this.catchUp();
    this.buffer = undefined;
    const length = this.content.contentLength();
    if (length === null || this.pos !== length) throw new Error(`content hash at ${this.pos} of ${length} bytes`);
    return `sha256:${this.hash.digest("hex")}`;
  }

  /** Hashes verified pieces from the file while the running position is on one. */
  private catchUp(): Promise<void> {
    this.catchingUp ??= this.readVerified().finally(() => (this.catchingUp = undefined));
    return this.catchingUp;
  }

  private async readVerified(): Promise<void> {
    const { pieceLength } = this.content;
    for (;;) {
      const length = this.content.contentLength();
      const n = Math.floor(this.pos / pieceLength);
      if (length === null || this.pos >= length || !this.content.hasPiece(n) || this.marks.has(n)) return;
      const end = Math.min(length, (n + 1) * pieceLength);
      const fh = await this.content.file();
      this.buffer ??= Buffer.allocUnsafe(READ_BLOCK);
      while (this.pos < end) {
        const { bytesRead } = await fh.read(this.buffer, 0, Math.min(READ_BLOCK, end - this.pos), this.pos);
        if (bytesRead === 0) throw new Error(`content file ends at ${this.pos}`);
        this.hash.update(this.buffer.subarray(0, bytesRead));
        this.pos += bytesRead;
      }
    }
  }
}
