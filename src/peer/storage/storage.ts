/**
 * All tasks a peer holds: load on start, create, look up, evict. The metadata of at
 * most `residentTasks` tasks stays in memory (least recently used leave first, but
 * never one in use); the others stay on disk, counted but with no record in memory,
 * and are read back when asked for. Their content goes only by the GC's TTL and
 * watermarks, which scan the disk for them.
 */
import { mkdir, opendir, rm, stat, statfs } from "node:fs/promises";
import { join } from "node:path";
import { PEER } from "../../common/defaults.js";
import { isTaskId } from "../../common/task-id.js";
import type { Logger } from "../../common/logger.js";
import { CONTENT_FILE, META_FILE, StoredTask, type TaskMeta } from "./stored-task.js";
import { loadTaskDir, metaBytes, readMeta } from "./task-dir.js";

export interface GcPolicy {
  taskTtlMs: number;
  highWatermarkPercent: number;
  lowWatermarkPercent: number;
  /** When set, watermarks are percentages of this many bytes instead of the filesystem. */
  quotaBytes?: number;
}

export interface StorageOptions {
  /** Tasks whose metadata stays in memory (PEER.residentTasks). */
  residentTasks: number;
}

/** What the scheduler must be told about a task that left the disk. */
export type EvictedTask = Pick<TaskMeta, "taskId" | "peerId">;

/** A task on disk whose metadata is not in memory, as a garbage collection pass sees it. */
interface AwayTask {
  taskId: string;
  lastAccess: number;
  /** Its content file's size: enough to rank it; its metadata says exactly when it goes. */
  size: number;
}

export class Storage {
  /** Tasks whose metadata is in memory, least recently used first. */
  private readonly resident = new Map<string, StoredTask>();
  /** Reads from disk (and removals of tasks not in memory) in flight: one task never has two objects. */
  private readonly pending = new Map<string, Promise<StoredTask | undefined>>();
  /** Tasks on disk whose metadata is not in memory: only how many, and their verified bytes. */
  private away = { tasks: 0, bytes: 0 };
  readonly tasksDir: string;

  constructor(
    readonly dataDir: string,
    private readonly log: Logger,
    /** Called when a task is evicted, so the scheduler can be told. */
    private readonly onEvict: (task: EvictedTask) => void = () => undefined,
    private readonly opts: StorageOptions = { residentTasks: PEER.residentTasks },
  ) {
    this.tasksDir = join(dataDir, "tasks");
  }

  /**
   * Keeps completed tasks whose content file has the right size, and downloads cut
   * short with the pieces that still check; drops everything else. The most recently
   * used stay in memory.
   */
  async load(): Promise<void> {
    await mkdir(this.tasksDir, { recursive: true, mode: 0o700 });
    const kept: StoredTask[] = [];
    const dir = await opendir(this.tasksDir);
    for await (const entry of dir) {
      const path = join(this.tasksDir, entry.name);
      try {
        if (!isTaskId(entry.name)) throw new Error("not a task directory");
        const meta = await loadTaskDir(path, entry.name);
        const task = new StoredTask(path, meta);
        // Completed but perhaps never flushed before a crash: it checked, so flush it now.
        if (meta.complete && !meta.durable) void task.persist();
        // A download cut short keeps only the pieces that checked.
        if (!meta.complete) await task.saveMeta();
        kept.push(task);
      } catch (err) {
        this.log.info({ dir: path, reason: (err as Error).message }, "removing unusable task directory");
        await rm(path, { recursive: true, force: true });
      }
    }
    kept.sort((a, b) => a.meta.lastAccess - b.meta.lastAccess);
    for (const task of kept) this.resident.set(task.taskId, task);
    this.trim();
    const partial = kept.filter((t) => !t.complete).length;
    this.log.info({ tasks: kept.length, partial, inMemory: this.resident.size }, "storage loaded");
  }

  /** The task if its metadata is in memory (a cheap look-up; see `open`). */
  get(taskId: string): StoredTask | undefined {
    const task = this.resident.get(taskId);
    if (task) this.bump(task);
    return task;
  }

  /** The task, read back from disk when its metadata is not in memory; undefined when it is not held. */
  async open(taskId: string): Promise<StoredTask | undefined> {
    const task = this.get(taskId);
    if (task) return task;
    const inFlight = this.pending.get(taskId);
    if (inFlight) return inFlight.then((t) => (t && this.resident.get(taskId) === t ? t : this.open(taskId)));
    if (!isTaskId(taskId)) return undefined;
    const loading = this.readBack(taskId).finally(() => this.pending.delete(taskId));
    this.pending.set(taskId, loading);
    return loading;
  }

  private async readBack(taskId: string): Promise<StoredTask | undefined> {
    const dir = join(this.tasksDir, taskId);
    let meta: TaskMeta;
    try {
      meta = await loadTaskDir(dir, taskId);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      // It was counted away from memory: it goes, with what its metadata said it held.
      const bytes = await readMeta(dir).then(metaBytes, () => 0);
      this.log.info({ dir, reason: (err as Error).message }, "removing unusable task directory");
      await rm(dir, { recursive: true, force: true });
      this.leftDisk(bytes);
      return undefined;
    }
    const task = new StoredTask(dir, meta);
    this.leftDisk(metaBytes(meta));
    this.resident.set(taskId, task);
    this.trim();
    return task;
  }

  /** Tasks whose metadata is in memory. */
  inMemory(): StoredTask[] {
    return [...this.resident.values()];
  }

  countInMemory(): number {
    return this.resident.size;
  }

  /** Calls `fn` for every complete task on disk, reading back those not in memory one at a time. */
  async eachComplete(fn: (task: StoredTask) => Promise<void>): Promise<void> {
    const seen = new Set<string>();
    for (const task of this.inMemory()) {
      seen.add(task.taskId);
      if (task.complete) await fn(task);
    }
    for (const { taskId } of await this.scanAway(seen)) {
      const task = await this.open(taskId);
      if (task?.complete) await fn(task);
    }
  }

  /** Tasks on disk, in memory or not. */
  count(): number {
    return this.resident.size + this.away.tasks;
  }

  /** A fresh, empty task directory (any leftover is removed first). */
  async create(taskId: string, identity: Pick<TaskMeta, "url" | "tag" | "application" | "explicitPieceLength">): Promise<StoredTask> {
    if (!isTaskId(taskId)) throw new Error(`invalid task id ${taskId}`);
    const leftover = await this.open(taskId);
    if (leftover) await this.remove(leftover);
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
      validator: null,
      peerId: null,
      contentMtimeNs: null,
      createdAt: now,
      lastAccess: now,
    });
    this.resident.set(taskId, task);
    this.trim();
    return task;
  }

  /** Resolves once every completed task's content is flushed to disk (on shutdown). */
  async flush(): Promise<void> {
    await Promise.all(this.inMemory().map((t) => t.whenPersisted()));
  }

  /**
   * False, once it is removed (and the scheduler told, as for an eviction), when a complete
   * task's content file changed on disk since it completed: an output `kiln get` hard-linked
   * to it was edited. Nothing may serve such content; the next request downloads it again.
   */
  async intact(task: StoredTask): Promise<boolean> {
    if (await task.contentUnchanged()) return true;
    if (this.resident.get(task.taskId) === task) {
      this.log.warn(
        { task: task.taskId, event: "content_changed" },
        "the stored content changed on disk after it was verified (an output hard-linked to it edited?); the task is dropped",
      );
      this.onEvict(task.meta);
      await this.remove(task);
    }
    return false;
  }

  async remove(task: StoredTask): Promise<void> {
    if (this.resident.get(task.taskId) === task) this.resident.delete(task.taskId);
    await task.destroy();
  }

  usedBytes(): number {
    let n = this.away.bytes;
    for (const t of this.resident.values()) n += t.bytesOnDisk;
    return n;
  }

  /** Evicts expired tasks, then least recently used ones while above the high watermark. */
  async collectGarbage(policy: GcPolicy, now = Date.now()): Promise<EvictedTask[]> {
    const evicted: EvictedTask[] = [];
    const evict = async (t: StoredTask, reason: string) => {
      this.log.info({ task: t.taskId, reason }, "evicting task");
      evicted.push(t.meta);
      this.onEvict(t.meta);
      await this.remove(t);
    };
    const evictAway = async (a: AwayTask, reason: string) => {
      const gone = await this.removeAway(a.taskId);
      if (!gone) return;
      this.log.info({ task: a.taskId, reason }, "evicting task");
      evicted.push(gone);
      this.onEvict(gone);
    };
    const expired = (lastAccess: number) => now - lastAccess > policy.taskTtlMs;
    for (const t of this.inMemory()) if (t.idle && expired(t.meta.lastAccess)) await evict(t, "ttl expired");
    let away = await this.scanAway(new Set(this.resident.keys()));
    for (const a of away) if (expired(a.lastAccess)) await evictAway(a, "ttl expired");
    away = away.filter((a) => !expired(a.lastAccess));

    const usage = await this.usage(policy);
    if (usage.percent <= policy.highWatermarkPercent) return evicted;
    const target = (policy.lowWatermarkPercent / 100) * usage.capacity;
    let used = usage.used;
    const why = `disk usage ${usage.percent.toFixed(1)}% above high watermark ${policy.highWatermarkPercent}%`;
    const candidates = [
      ...this.inMemory()
        .filter((t) => t.idle)
        .map((t) => ({ lastAccess: t.meta.lastAccess, task: t as StoredTask | AwayTask })),
      ...away.map((a) => ({ lastAccess: a.lastAccess, task: a as StoredTask | AwayTask })),
    ].sort((a, b) => a.lastAccess - b.lastAccess);
    for (const { task } of candidates) {
      if (used <= target) break;
      if (task instanceof StoredTask) {
        // In use again since the list was made.
        if (!task.idle || this.resident.get(task.taskId) !== task) continue;
        used -= task.bytesOnDisk;
        await evict(task, why);
      } else {
        used -= task.size;
        await evictAway(task, why);
      }
    }
    return evicted;
  }

  /** Moves `task` to the most recently used end. */
  private bump(task: StoredTask): void {
    this.resident.delete(task.taskId);
    this.resident.set(task.taskId, task);
  }

  /** Drops the metadata of the least recently used idle tasks while more than `residentTasks` are in memory (never the newest). */
  private trim(): void {
    let over = this.resident.size - this.opts.residentTasks;
    if (over <= 0) return;
    let left = this.resident.size - 1;
    for (const task of this.resident.values()) {
      if (over <= 0 || left-- <= 0) break;
      if (!task.idle) continue;
      this.resident.delete(task.taskId);
      this.away.tasks++;
      this.away.bytes += task.bytesOnDisk;
      over--;
      // Written before anyone can read it back: a read waits for it.
      const unloading = task.unload().then(() => undefined);
      this.pending.set(task.taskId, unloading);
      void unloading.finally(() => {
        if (this.pending.get(task.taskId) === unloading) this.pending.delete(task.taskId);
      });
    }
  }

  private leftDisk(bytes: number): void {
    this.away.tasks = Math.max(0, this.away.tasks - 1);
    this.away.bytes = Math.max(0, this.away.bytes - bytes);
  }

  /** Removes a task that is not in memory (unless it is being read back); returns what it was. */
  private async removeAway(taskId: string): Promise<EvictedTask | undefined> {
    if (this.resident.has(taskId) || this.pending.has(taskId)) return undefined;
    const dir = join(this.tasksDir, taskId);
    const removal = (async () => {
      const meta = await readMeta(dir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      this.leftDisk(meta ? metaBytes(meta) : 0);
      return meta;
    })();
    const blocking = removal.then(() => undefined);
    this.pending.set(taskId, blocking);
    try {
      const meta = await removal;
      return { taskId, peerId: meta?.peerId ?? null };
    } finally {
      if (this.pending.get(taskId) === blocking) this.pending.delete(taskId);
    }
  }

  /** The tasks on disk not in `skip` (those in memory), by their metadata file's mtime (their last access). */
  private async scanAway(skip: ReadonlySet<string>): Promise<AwayTask[]> {
    const found: AwayTask[] = [];
    if (this.away.tasks === 0) return found;
    for await (const entry of await opendir(this.tasksDir)) {
      const taskId = entry.name;
      if (skip.has(taskId) || this.resident.has(taskId) || this.pending.has(taskId) || !isTaskId(taskId)) continue;
      const dir = join(this.tasksDir, taskId);
      try {
        const [meta, content] = await Promise.all([stat(join(dir, META_FILE)), stat(join(dir, CONTENT_FILE)).catch(() => ({ size: 0 }))]);
        found.push({ taskId, lastAccess: meta.mtimeMs, size: content.size });
      } catch {
        // Created or removed meanwhile.
      }
    }
    return found;
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
