/**
 * The last answer a registry gave for each tag (registry + repository + tag → digest,
 * media type, size), kept on disk, so a peer can still resolve a tag while the
 * registry is down (manifest-by-tag.ts). An answer is only ever written from the
 * registry's own 200; it is read only when the registry fails.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import type { Logger } from "../../common/logger.js";

export const TagAnswer = z.object({
  digest: z.string().regex(/^sha256:[a-f0-9]{64}$/),
  mediaType: z.string().min(1),
  size: z.number().int().nonnegative(),
  /** Whether the registry serves this manifest without credentials; null while not known (treated as no). */
  anonymous: z.boolean().nullable(),
  /** When the registry last gave this answer (ms since the epoch). */
  at: z.number().int().nonnegative(),
});
export type TagAnswer = z.infer<typeof TagAnswer>;

const MemoryFile = z.object({ version: z.literal(1), tags: z.record(z.string(), TagAnswer) });

export interface TagMemoryOptions {
  /** Tags remembered at most; the least recently answered are forgotten first. */
  maxEntries: number;
  /** Writes to disk are gathered over this window. */
  saveDelayMs: number;
}

/** `<origin> <repository>:<tag>`: one registry's tag, whatever the mirror request looked like. */
export function tagKey(origin: string, repository: string, tag: string): string {
  return `${origin} ${repository}:${tag}`;
}

export class TagMemory {
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly tags: Map<string, TagAnswer>,
    private readonly opts: TagMemoryOptions,
    private readonly log: Logger,
  ) {}

  /** Reads the file at `path`; a missing or unreadable one starts empty (and says so when unreadable). */
  static async load(path: string, opts: TagMemoryOptions, log: Logger): Promise<TagMemory> {
    const tags = new Map<string, TagAnswer>();
    try {
      const parsed = MemoryFile.safeParse(JSON.parse(await readFile(path, "utf8")));
      if (parsed.success) {
        const byAge = Object.entries(parsed.data.tags).sort(([, a], [, b]) => a.at - b.at);
        for (const [key, answer] of byAge) tags.set(key, answer);
      } else log.warn({ path, issue: parsed.error.issues[0]?.message }, "remembered tags unreadable: starting without them");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        log.warn({ path, err: (err as Error).message }, "remembered tags unreadable: starting without them");
    }
    return new TagMemory(path, tags, opts, log);
  }

  get size(): number {
    return this.tags.size;
  }

  recall(key: string): TagAnswer | undefined {
    return this.tags.get(key);
  }

  /** The registry just answered `key` with this (now). */
  remember(key: string, answer: Omit<TagAnswer, "at" | "anonymous"> & { anonymous?: boolean | null }, now = Date.now()): TagAnswer {
    const previous = this.tags.get(key);
    const anonymous = answer.anonymous ?? (previous?.digest === answer.digest ? previous.anonymous : null);
    const next: TagAnswer = { digest: answer.digest, mediaType: answer.mediaType, size: answer.size, anonymous, at: now };
    this.tags.delete(key);
    this.tags.set(key, next);
    for (const oldest of this.tags.keys()) {
      if (this.tags.size <= this.opts.maxEntries) break;
      this.tags.delete(oldest);
    }
    this.scheduleSave();
    return next;
  }

  /** What a probe without credentials found for the answer of `key` (ignored when the tag has moved since). */
  setAnonymous(key: string, digest: string, anonymous: boolean): void {
    const answer = this.tags.get(key);
    if (!answer || answer.digest !== digest || answer.anonymous === anonymous) return;
    answer.anonymous = anonymous;
    this.scheduleSave();
  }

  private scheduleSave(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.saving = this.saving.then(() => this.save());
    }, this.opts.saveDelayMs);
    this.timer.unref();
  }

  private async save(): Promise<void> {
    const body = JSON.stringify({ version: 1, tags: Object.fromEntries(this.tags) });
    const tmp = `${this.path}.tmp`;
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await writeFile(tmp, body);
      await rename(tmp, this.path);
    } catch (err) {
      this.log.warn({ path: this.path, err: (err as Error).message }, "could not save remembered tags");
    }
  }

  /** Writes what is pending now (on close). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.saving = this.saving.then(() => this.save());
    }
    await this.saving;
  }
}
