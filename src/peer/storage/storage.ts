/** All tasks a peer holds: load on start, create, look up, evict. */
import { createHash } from "node:crypto";
import { mkdir, open, readdir, readFile, rm, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { isTaskId } from "../../common/task-id.js";
import type { Logger } from "../../common/logger.js";
import { PieceInfo } from "../../api/scheduler.js";
import { OriginAccess } from "../../api/common.js";
import { CONTENT_FILE, META_FILE, StoredTask, type TaskMeta } from "./stored-task.js";

const TaskMetaSchema = z.object({
  taskId: z.string(),
  url: z.string(),
  tag: z.string().default(""),
  application: z.string().default(""),
  explicitPieceLength: z.number().int().nullable().default(null),
  contentLength: z.number().int().nullable(),
  pieceLength: z.number().int().nullable(),
  /** Metadata written before this field existed does not know: its content is treated as needing credentials. */
  access: OriginAccess.nullable().default(null),
  pieces: z.array(PieceInfo),
  complete: z.boolean(),
  /** Metadata written before this field existed was written after the content was flushed. */
  durable: z.boolean().default(true),
  createdAt: z.number(),
  lastAccess: z.number(),
});

export interface GcPolicy {
  taskTtlMs: number;
  highWatermarkPercent: number;
  lowWatermarkPercent: number;
  /** When set, watermarks are percentages of this many bytes instead of the filesystem. */
  quotaBytes?: number;
}

export class Storage {
  private readonly tasks = new Map<string, StoredTask>();
  readonly tasksDir: string;

  constructor(
    readonly dataDir: string,
    private readonly log: Logger,
    /** Called when a task is evicted, so the scheduler can be told. */
    private readonly onEvict: (task: StoredTask) => void = () => undefined,
  ) {
    this.tasksDir = join(dataDir, "tasks");
  }

  /** Keeps completed tasks whose content file has the right size; drops everything else. */
  async load(): Promise<void> {
    await mkdir(this.tasksDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.tasksDir)) {
      const dir = join(this.tasksDir, name);
      try {
        if (!isTaskId(name)) throw new Error("not a task directory");
        const meta = TaskMetaSchema.parse(JSON.parse(await readFile(join(dir, META_FILE), "utf8"))) as TaskMeta;
        if (!meta.complete || meta.taskId !== name) throw new Error("incomplete");
        const size = (await stat(join(dir, CONTENT_FILE))).size;
        if (size !== meta.contentLength) throw new Error(`content is ${size} bytes, metadata says ${meta.contentLength}`);
        // Completed but perhaps never flushed before a crash: keep it only if every piece still checks.
        if (!meta.durable) await verifyPieces(join(dir, CONTENT_FILE), meta);
        const task = new StoredTask(dir, meta);
        if (!meta.durable) void task.persist();
        this.tasks.set(name, task);
      } catch (err) {
        this.log.info({ dir, reason: (err as Error).message }, "removing unusable task directory");
        await rm(dir, { recursive: true, force: true });
      }
    }
    this.log.info({ tasks: this.tasks.size }, "storage loaded");
  }

  get(taskId: string): StoredTask | undefined {
    return this.tasks.get(taskId);
  }

  all(): StoredTask[] {
    return [...this.tasks.values()];
  }

  /** A fresh, empty task directory (any leftover is removed first). */
  async create(taskId: string, identity: Pick<TaskMeta, "url" | "tag" | "application" | "explicitPieceLength">): Promise<StoredTask> {
    if (!isTaskId(taskId)) throw new Error(`invalid task id ${taskId}`);
    const dir = join(this.tasksDir, taskId);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const now = Date.now();
    const task = new StoredTask(dir, {
      taskId,
      ...identity,
      contentLength: null,
      pieceLength: null,
      access: null,
      pieces: [],
      complete: false,
      durable: false,
      createdAt: now,
      lastAccess: now,
    });
    this.tasks.set(taskId, task);
    return task;
  }

  /** Resolves once every completed task's content is flushed to disk (on shutdown). */
  async flush(): Promise<void> {
    await Promise.all(this.all().map((t) => t.whenPersisted()));
  }

  async remove(task: StoredTask): Promise<void> {
    if (this.tasks.get(task.taskId) === task) this.tasks.delete(task.taskId);
    await task.destroy();
  }

  usedBytes(): number {
    let n = 0;
    for (const t of this.tasks.values()) n += t.bytesOnDisk;
    return n;
  }

  /** Evicts expired tasks, then least recently used ones while above the high watermark. */
  async collectGarbage(policy: GcPolicy, now = Date.now()): Promise<StoredTask[]> {
    const evicted: StoredTask[] = [];
    const evict = async (t: StoredTask, reason: string) => {
      this.log.info({ task: t.taskId, reason }, "evicting task");
      evicted.push(t);
      this.onEvict(t);
      await this.remove(t);
    };
    for (const t of this.all()) {
      if (t.complete && !t.pinned && now - t.meta.lastAccess > policy.taskTtlMs) await evict(t, "ttl expired");
    }
    const usage = await this.usage(policy);
    if (usage.percent > policy.highWatermarkPercent) {
      const target = (policy.lowWatermarkPercent / 100) * usage.capacity;
      let used = usage.used;
      const lru = this.all()
        .filter((t) => t.complete && !t.pinned)
        .sort((a, b) => a.meta.lastAccess - b.meta.lastAccess);
      for (const t of lru) {
        if (used <= target) break;
        used -= t.bytesOnDisk;
        await evict(t, `disk usage ${usage.percent.toFixed(1)}% above high watermark ${policy.highWatermarkPercent}%`);
      }
    }
    return evicted;
  }

  private async usage(policy: GcPolicy): Promise<{ used: number; capacity: number; percent: number }> {
    if (policy.quotaBytes) {
      const used = this.usedBytes();
      return { used, capacity: policy.quotaBytes, percent: (100 * used) / policy.quotaBytes };
    }
    const fs = await statfs(this.dataDir);
    const capacity = fs.blocks * fs.bsize;
    const used = capacity - fs.bavail * fs.bsize;
    return { used, capacity, percent: (100 * used) / capacity };
  }
}

/** Free bytes for this user on the file system holding `dir` (0 when it cannot be read). */
export async function freeDiskBytes(dir: string): Promise<number> {
  try {
    const fs = await statfs(dir);
    return fs.bavail * fs.bsize;
  } catch {
    return 0;
  }
}

/** Throws unless every piece the metadata lists has its digest in the content file. */
async function verifyPieces(path: string, meta: TaskMeta): Promise<void> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (const p of meta.pieces) {
      const hash = createHash("sha256");
      const end = p.number * meta.pieceLength! + p.length;
      for (let pos = p.number * meta.pieceLength!; pos < end; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
        if (bytesRead === 0) throw new Error(`content ends at ${pos}`);
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      if (`sha256:${hash.digest("hex")}` !== p.digest) throw new Error(`piece ${p.number} no longer matches its digest (not flushed before a crash?)`);
    }
  } finally {
    await fh.close();
  }
}
