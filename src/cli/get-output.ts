/** `kiln get -O FILE`: written beside FILE under a temporary name, renamed only once complete, so FILE is never partial. */
import { randomBytes } from "node:crypto";
import { constants, createWriteStream, rmSync, type WriteStream } from "node:fs";
import { copyFile, link, open, rename, rm } from "node:fs/promises";
import { once } from "node:events";
import { basename, dirname, join } from "node:path";

/** What a new file gets before the umask (as `open(2)` callers like curl create it). */
const NEW_FILE_MODE = 0o666;

export class PendingOutput {
  readonly tmp: string;
  /** Operations under way that may (re)create the temporary file: one finishing after a removal would leave it behind. */
  private readonly creating = new Set<Promise<unknown>>();

  constructor(readonly target: string) {
    this.tmp = join(dirname(target), `.${basename(target)}.kiln-${randomBytes(4).toString("hex")}.part`);
  }

  /** Creates the temporary file as any new file of this user is created; resolves to the mode it got (the umask applied). */
  async create(): Promise<number> {
    const opening = this.track(open(this.tmp, "wx", NEW_FILE_MODE));
    const fh = await opening;
    try {
      return (await fh.stat()).mode & 0o7777;
    } finally {
      await fh.close();
    }
  }

  writeStream(): WriteStream {
    const stream = createWriteStream(this.tmp, { flags: "wx", mode: NEW_FILE_MODE });
    this.track(once(stream, "open"));
    return stream;
  }

  /** Copies `source` into the temporary file: a reflink where the filesystem has them, else an in-kernel copy. */
  async copyFrom(source: string): Promise<void> {
    await this.track(copyFile(source, this.tmp, constants.COPYFILE_FICLONE));
  }

  /** A reflink of `source` (a copy that shares its blocks until either is written); throws where the filesystem has none. */
  async cloneFrom(source: string): Promise<void> {
    await this.track(copyFile(source, this.tmp, constants.COPYFILE_FICLONE_FORCE));
  }

  /** The temporary file becomes another name of `source` (same filesystem only). */
  async linkFrom(source: string): Promise<void> {
    await this.track(link(source, this.tmp));
  }

  /** Flushes the temporary file to disk and renames it to the target. */
  async commit(): Promise<void> {
    const fh = await open(this.tmp, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.target);
  }

  async discard(): Promise<void> {
    await rm(this.tmp, { force: true });
  }

  /** Removes the temporary file now (a process about to exit cannot wait for a promise). */
  discardSync(): void {
    rmSync(this.tmp, { force: true });
  }

  /** Resolves once nothing that may create the temporary file is under way (each one settled), or after `limitMs`. */
  async settled(limitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((done) => (timer = setTimeout(done, limitMs)));
    await Promise.race([Promise.allSettled([...this.creating]), limit]);
    clearTimeout(timer);
  }

  private track<T>(creation: Promise<T>): Promise<T> {
    const settled: Promise<unknown> = creation.then(
      () => this.creating.delete(settled),
      () => this.creating.delete(settled),
    );
    this.creating.add(settled);
    return creation;
  }
}
