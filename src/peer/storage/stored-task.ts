/** One task's content on disk: a pre-sized file, verified pieces, and metadata. */
import { EventEmitter } from "node:events";
import { open, rename, rm, stat, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../../common/errors.js";
import { PEER } from "../../common/defaults.js";
import { BitSet } from "../../common/bitset.js";
import { layoutConflict, pieceCount, pieceRange } from "../../common/piece.js";
import type { PieceInfo } from "../../api/scheduler.js";
import type { TaskMeta } from "./task-meta.js";

export type { TaskMeta };
import { PieceWriter, diskError, type WrittenPiece } from "./piece-writer.js";
import { ContentHasher } from "./content-hasher.js";

export const CONTENT_FILE = "content";
export const META_FILE = "meta.json";

/** What a piece must be: its canonical digest and length, when the scheduler knows them. */
export type ExpectedPiece = Pick<PieceInfo, "digest" | "length">;

export class StoredTask extends EventEmitter {
  private readonly done = new BitSet();
  private readonly infos = new Map<number, PieceInfo>();
  private fh: FileHandle | undefined;
  /** Hashes the whole content while it arrives, when it must match a blob digest. */
  private hasher: ContentHasher | undefined;
  private hashWanted = false;
  private persisting: Promise<void> | undefined;
  private persisted = false;
  /** Metadata writes, one after the other (they share a temporary file). */
  private metaWrites: Promise<void> = Promise.resolve();
  /** A download's progress is written at most every PEER.progressSaveMs. */
  private progressTimer: NodeJS.Timeout | undefined;
  private savedAccess: number;
  private destroyed = false;
  /** Downloads and uploads in progress; garbage collection leaves pinned tasks alone. */
  private pins = 0;
  failure: KilnError | undefined;

  constructor(
    readonly dir: string,
    readonly meta: TaskMeta,
  ) {
    super();
    this.setMaxListeners(0);
    this.savedAccess = meta.lastAccess;
    this.persisted = meta.complete && meta.durable;
    for (const p of meta.pieces) {
      this.done.add(p.number);
      this.infos.set(p.number, p);
    }
  }

  get taskId(): string {
    return this.meta.taskId;
  }
  get contentPath(): string {
    return join(this.dir, CONTENT_FILE);
  }
  get complete(): boolean {
    return this.meta.complete;
  }
  get finishedPieces(): number {
    return this.done.size;
  }
  get totalPieces(): number | null {
    const { contentLength, pieceLength } = this.meta;
    return contentLength === null || pieceLength === null ? null : pieceCount(contentLength, pieceLength);
  }
  get bytesOnDisk(): number {
    let n = 0;
    for (const p of this.infos.values()) n += p.length;
    return n;
  }

  get pinned(): boolean {
    return this.pins > 0;
  }

  /** Nothing holds it in memory: no download or upload, no flush in flight. */
  get idle(): boolean {
    return this.pins === 0 && (!this.meta.complete || this.persisted);
  }

  /** Keeps the task from eviction until the returned release is called (once; later calls do nothing). */
  acquire(): () => void {
    this.pins++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.pins--;
    };
  }

  hasPiece(n: number): boolean {
    return this.done.has(n);
  }
  piece(n: number): PieceInfo | undefined {
    return this.infos.get(n);
  }
  pieces(): PieceInfo[] {
    return [...this.infos.values()];
  }

  /** Fixes content and piece length, and sizes the file. */
  async setLayout(contentLength: number | null, pieceLength: number): Promise<void> {
    const m = this.meta;
    const conflict = layoutConflict(m, { contentLength, pieceLength });
    if (conflict) throw new KilnError("CONFLICT", conflict);
    m.pieceLength = pieceLength;
    const fh = await this.handle().catch(rethrowDisk);
    if (contentLength !== null && m.contentLength === null) {
      m.contentLength = contentLength;
      await fh.truncate(contentLength).catch(rethrowDisk);
    }
    this.startHasher();
    this.emit("layout");
  }

  /** A download cut short (by a restart) goes on: the content file is opened for the missing pieces. */
  async resume(): Promise<void> {
    if (this.meta.pieceLength !== null) await this.handle().catch(rethrowDisk);
  }

  private startHasher(): void {
    const { pieceLength } = this.meta;
    if (!this.hashWanted || pieceLength === null) return;
    this.hasher ??= new ContentHasher({
      pieceLength,
      contentLength: () => this.meta.contentLength,
      hasPiece: (n) => this.hasPiece(n),
      file: () => this.handle(),
    });
  }

  private async handle(): Promise<FileHandle> {
    this.fh ??= await open(this.contentPath, "r+").catch(() => open(this.contentPath, "w+"));
    return this.fh;
  }

  /** Computes the whole content's sha256 while pieces arrive (for `contentDigest()`); pieces already stored are read back. */
  hashContent(): void {
    this.hashWanted = true;
    this.startHasher();
  }

  /** `sha256:<hex>` of the whole content, once every piece is stored (see hashContent). */
  contentDigest(): Promise<string> {
    if (!this.hasher) return Promise.reject(new KilnError("INTERNAL", "the content digest was not tracked"));
    return this.hasher.digest();
  }

  /** A writer for piece `n` at its offset; the piece is stored once `commitPiece` accepts what it wrote. */
  pieceWriter(n: number, expected?: ExpectedPiece): PieceWriter {
    const pieceLength = this.meta.pieceLength;
    if (pieceLength === null || !this.fh) throw new KilnError("CONFLICT", "piece written before the task layout is known");
    return new PieceWriter(this.fh, n, n * pieceLength, Math.min(pieceLength, expected?.length ?? Infinity), this.hasher);
  }

  /**
   * Verifies what a writer wrote and marks the piece stored: only now does it become
   * visible (to readers, uploads and the scheduler), once its length and, where one is
   * known, its digest check. A failed piece is never marked; throws DIGEST_MISMATCH.
   */
  commitPiece(n: number, written: WrittenPiece, expected?: ExpectedPiece): PieceInfo {
    const { length, digest } = written;
    const { contentLength, pieceLength } = this.meta;
    try {
      if (contentLength !== null && pieceLength !== null) {
        const want = pieceRange(n, contentLength, pieceLength);
        if (length !== want.end - want.start) {
          throw new KilnError("DIGEST_MISMATCH", `piece ${n} has ${length} bytes, expected ${want.end - want.start}`);
        }
      }
      if (expected && (expected.digest !== digest || expected.length !== length)) {
        throw new KilnError("DIGEST_MISMATCH", `piece ${n} digest ${digest} does not match ${expected.digest}`);
      }
    } catch (err) {
      this.hasher?.abandoned(n);
      throw err;
    }
    const info = { number: n, digest, length };
    if (!this.done.has(n)) {
      this.done.add(n);
      this.infos.set(n, info);
      this.meta.pieces.push(info);
      this.hasher?.verified(n);
      this.emit("piece", n);
      this.saveProgressSoon();
    }
    return info;
  }

  /** Resolves when piece `n` is verified; rejects if the task fails first. */
  waitForPiece(n: number): Promise<void> {
    return this.waitFor(() => this.done.has(n), ["piece"]);
  }

  /** Resolves once the layout (content length) is known, or the task completes or fails. */
  waitForLayout(): Promise<void> {
    return this.waitFor(() => this.meta.contentLength !== null || this.complete, ["layout", "complete"]);
  }

  /** Resolves when `ready()` holds, re-checked on each of `events`; rejects when the task fails. */
  private waitFor(ready: () => boolean, events: string[]): Promise<void> {
    if (ready()) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!ready()) return;
        cleanup();
        resolve();
      };
      const fail = (err: KilnError) => {
        cleanup();
        reject(err);
      };
      const cleanup = () => {
        for (const e of events) this.off(e, check);
        this.off("failed", fail);
      };
      for (const e of events) this.on(e, check);
      this.on("failed", fail);
    });
  }

  /**
   * Marks the task complete after every piece verified and persists the metadata; the
   * content is flushed to disk afterwards, off the download's path (see `persist`). A
   * crash before that leaves `durable: false` on disk, and the task is verified again on load.
   */
  async markComplete(contentLength: number): Promise<void> {
    this.meta.contentLength ??= contentLength;
    const total = this.totalPieces ?? 0;
    if (this.done.size !== total) throw new KilnError("INTERNAL", `task has ${this.done.size} of ${total} pieces`);
    this.meta.complete = true;
    this.meta.durable = false;
    this.meta.contentMtimeNs = String((await (await this.handle()).stat({ bigint: true })).mtimeNs);
    this.meta.pieces.sort((a, b) => a.number - b.number);
    clearTimeout(this.progressTimer);
    await this.saveMeta();
    this.emit("complete");
    void this.persist();
  }

  /**
   * Whether a complete task's content file is as it was when the task completed: its
   * mtime and size unchanged. False when something wrote to it since (an output hard-linked
   * to it and edited) or it is gone.
   */
  async contentUnchanged(): Promise<boolean> {
    const stamp = this.meta.contentMtimeNs;
    if (!this.meta.complete || stamp === null) return true;
    const st = await stat(this.contentPath, { bigint: true }).catch(() => undefined);
    return st !== undefined && String(st.mtimeNs) === stamp && Number(st.size) === this.meta.contentLength;
  }

  /** Flushes the content to disk, then records that it is durable; never rejects (the task then stays `durable: false`). */
  persist(): Promise<void> {
    this.persisting ??= (async () => {
      try {
        await (await this.handle()).datasync();
        this.meta.durable = true;
        await this.saveMeta();
      } catch {
        // Left durable: false, so the next load verifies the content again.
      }
      await this.closeFile().catch(() => undefined);
      this.persisted = true;
    })();
    return this.persisting;
  }

  /** Resolves once a flush started by `persist` is over (at once if none was). */
  whenPersisted(): Promise<void> {
    return this.persisting ?? Promise.resolve();
  }

  fail(err: KilnError): void {
    this.failure = err;
    this.emit("failed", err);
  }

  touch(): void {
    this.meta.lastAccess = Date.now();
  }

  /** Writes the metadata (after any write before it); its file's mtime is the task's last access. */
  saveMeta(): Promise<void> {
    const write = this.metaWrites.then(async () => {
      if (this.destroyed) return;
      const tmp = join(this.dir, `${META_FILE}.tmp`);
      const lastAccess = this.meta.lastAccess;
      await writeFile(tmp, JSON.stringify(this.meta), { mode: 0o600 }).catch(rethrowDisk);
      await utimes(tmp, new Date(lastAccess), new Date(lastAccess));
      await rename(tmp, join(this.dir, META_FILE));
      this.savedAccess = lastAccess;
    });
    this.metaWrites = write.catch(() => undefined);
    return write;
  }

  /** The verified pieces so far go to disk soon (not on every piece), so a restart resumes from them. */
  private saveProgressSoon(): void {
    if (this.meta.complete || this.progressTimer) return;
    this.progressTimer = setTimeout(() => {
      this.progressTimer = undefined;
      if (!this.meta.complete) this.saveMeta().catch(() => undefined);
    }, PEER.progressSaveMs);
    this.progressTimer.unref();
  }

  /** Leaving memory: what is not on disk yet (the last access) is written; resolves once it is. */
  async unload(): Promise<void> {
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    if (this.meta.lastAccess !== this.savedAccess || !this.meta.complete) await this.saveMeta().catch(() => undefined);
    await this.closeFile().catch(() => undefined);
  }

  async closeFile(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  async destroy(): Promise<void> {
    clearTimeout(this.progressTimer);
    this.destroyed = true;
    // A flush or metadata write in progress would write into the directory being removed.
    await this.persisting;
    await this.metaWrites;
    await this.closeFile().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

function rethrowDisk(err: unknown): never {
  throw diskError(err);
}
