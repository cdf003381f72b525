/** `kiln get -O FILE`: written beside FILE under a temporary name, renamed only once complete, so FILE is never partial. */
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** What a new file gets before the umask (as `open(2)` callers like curl create it). */
const NEW_FILE_MODE = 0o666;

export class PendingOutput {
  readonly tmp: string;

  constructor(readonly target: string) {
    this.tmp = join(dirname(target), `.${basename(target)}.kiln-${randomBytes(4).toString("hex")}.part`);
  }

  /** Creates the temporary file as any new file of this user is created; resolves to the mode it got (the umask applied). */
  async create(): Promise<number> {
    const fh = await open(this.tmp, "wx", NEW_FILE_MODE);
    try {
      return (await fh.stat()).mode & 0o7777;
    } finally {
      await fh.close();
    }
  }

  writeStream(): WriteStream {
    return createWriteStream(this.tmp, { flags: "wx", mode: NEW_FILE_MODE });
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
}
