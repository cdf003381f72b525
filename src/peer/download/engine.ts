/** The peer's download engine: one download session per task, shared by every reader of it. */
import { KilnError } from "../../common/errors.js";
import { filterUrl, parseBlobUrl, taskIdFor } from "../../common/task-id.js";
import type { Logger } from "../../common/logger.js";
import type { DownloadSpec } from "../../api/common.js";
import { DownloadSession, newPeerId, type SessionDeps } from "./session.js";
import type { EngineScheduler } from "./scheduler-port.js";
import type { EvictedTask, Storage } from "../storage/storage.js";
import type { StoredTask } from "../storage/stored-task.js";
import type { ByteRange } from "../../common/piece.js";
import { verifiedRanges } from "../storage/verified-ranges.js";

export interface DownloadHandle {
  taskId: string;
  task: StoredTask;
  /** Settles when every piece is verified and stored. */
  done: Promise<void>;
  /** Verified, stored ranges of the content in order, while it downloads. */
  ranges(range?: ByteRange): AsyncIterable<ByteRange>;
}

export class PeerEngine {
  private readonly active = new Map<string, Promise<{ task: StoredTask; done: Promise<void> }>>();
  /** The session of each download in progress (to abort it when its task is deleted). */
  private readonly sessions = new Map<string, DownloadSession>();

  constructor(
    private readonly ctx: SessionDeps & { scheduler: EngineScheduler },
    readonly storage: Storage,
    private readonly log: Logger,
  ) {}

  /** Starts (or joins) the download of `spec`; resolves as soon as it is under way. */
  async download(spec: DownloadSpec): Promise<DownloadHandle> {
    const taskId = taskIdFor(spec);
    const stored = this.storage.get(taskId);
    if (stored?.complete && (await this.storage.intact(stored))) {
      stored.touch();
      return this.handle(taskId, stored, Promise.resolve());
    }
    // Registered synchronously, so concurrent requests for one task share one download.
    let running = this.active.get(taskId);
    if (!running) {
      running = this.start(taskId, spec);
      this.active.set(taskId, running);
    }
    const { task, done } = await running;
    return this.handle(taskId, task, done);
  }

  /** The task as stored (read back from disk if need be): complete, a download cut short by a restart to go on with, or a new one. */
  private async stored(taskId: string, spec: DownloadSpec): Promise<StoredTask> {
    const task = await this.storage.open(taskId);
    if (task?.complete) {
      if (await this.storage.intact(task)) return task;
    } else if (task) {
      await task.resume();
      this.log.info({ task: taskId, pieces: task.finishedPieces, total: task.totalPieces }, "resuming a download with the pieces kept from before a restart");
      return task;
    }
    return this.storage.create(taskId, {
      url: filterUrl(spec.url, spec.filteredQueryParams),
      tag: spec.tag,
      application: spec.application,
      explicitPieceLength: spec.pieceLength ?? null,
    });
  }

  private async start(taskId: string, spec: DownloadSpec): Promise<{ task: StoredTask; done: Promise<void> }> {
    let task: StoredTask;
    try {
      task = await this.stored(taskId, spec);
    } catch (err) {
      this.active.delete(taskId);
      throw err;
    }
    if (task.complete) {
      this.active.delete(taskId);
      task.touch();
      return { task, done: Promise.resolve() };
    }
    const blob = parseBlobUrl(spec.url);
    const session = new DownloadSession(this.ctx, spec, task, blob?.algorithm === "sha256" ? blob.digest : undefined);
    const release = task.acquire();
    this.sessions.set(taskId, session);
    // Saved with the task: the registration to leave when it is evicted.
    task.meta.peerId = session.peerId;
    const done = session
      .run()
      .then(
        () => undefined,
        async (err: KilnError) => {
          task.fail(err);
          await this.storage.remove(task).catch(() => undefined);
          throw err;
        },
      )
      .finally(() => {
        release();
        this.active.delete(taskId);
        this.sessions.delete(taskId);
      });
    done.catch(() => undefined);
    return { task, done };
  }

  private handle(taskId: string, task: StoredTask, done: Promise<void>): DownloadHandle {
    return { taskId, task, done, ranges: (range?: ByteRange) => verifiedRanges(task, done, range) };
  }

  /** This peer is fetching the task from the origin (it spreads the pieces as they land). */
  fetchesFromOrigin(taskId: string): boolean {
    return this.sessions.get(taskId)?.state === "back_to_source";
  }

  /**
   * Drops a task on an operator's request (delete_task): a download in progress fails
   * with `reason`, readers waiting for pieces get that error, content and metadata go.
   * The scheduler asked, so it is not told again. Returns the bytes freed, or
   * undefined when this peer did not hold the task.
   */
  async deleteTask(taskId: string, reason: string): Promise<number | undefined> {
    const err = new KilnError("GONE", reason);
    const session = this.sessions.get(taskId);
    if (session) {
      await session.abort(err);
      await this.active.get(taskId)?.then(({ done }) => done.catch(() => undefined));
    }
    const task = await this.storage.open(taskId);
    if (!task) return session ? 0 : undefined;
    const bytes = task.bytesOnDisk;
    task.fail(err);
    await this.storage.remove(task);
    this.log.info({ task: taskId, bytes, reason }, "task deleted");
    return bytes;
  }

  /** Tells the scheduler this peer no longer holds an evicted task. */
  async evicted(task: EvictedTask): Promise<void> {
    if (task.peerId) await this.ctx.scheduler.leaveTask(task.taskId, task.peerId).catch(() => undefined);
  }

  /**
   * Registers every completed task on disk as held by this peer, and every download
   * in progress with what it holds: after a restart, or when the scheduler forgot
   * this host, so others can fetch from it again and the downloads go on. `only`:
   * just these tasks (those of one scheduler of several, scheduler-ring.ts).
   */
  async reannounce(only: (taskId: string) => boolean = () => true): Promise<void> {
    for (const [taskId, session] of this.sessions) {
      if (!only(taskId)) continue;
      await session.reregister().catch((err: Error) => this.log.warn({ task: taskId, err: err.message }, "could not register a download in progress again"));
    }
    await this.storage.eachComplete(async (task) => {
      if (this.active.has(task.taskId) || !only(task.taskId)) return;
      const { url, tag, application, explicitPieceLength, contentLength, pieceLength } = task.meta;
      const peerId = newPeerId(this.ctx.hostId);
      try {
        const reply = await this.ctx.scheduler.registerPeer({
          peerId,
          hostId: this.ctx.hostId,
          download: { url, tag, application, filteredQueryParams: [], ...(explicitPieceLength ? { pieceLength: explicitPieceLength } : {}) },
          completed: {
            contentLength: contentLength!,
            pieceLength: pieceLength!,
            pieces: task.pieces(),
            ...(task.meta.access ? { access: task.meta.access } : {}),
          },
        });
        if (reply.taskId !== task.taskId) throw new KilnError("INTERNAL", `scheduler computed task ${reply.taskId}`);
        task.meta.peerId = peerId;
        await task.saveMeta();
      } catch (err) {
        this.log.warn({ task: task.taskId, err: (err as Error).message }, "could not re-register a held task");
      }
    });
  }

  /** Leaves the tasks held in memory; the scheduler drops the rest with the host (leaveHost). */
  async shutdown(): Promise<void> {
    const held = this.storage.inMemory().filter((t) => t.complete && t.meta.peerId);
    await Promise.all(held.map((t) => this.ctx.scheduler.leaveTask(t.taskId, t.meta.peerId!).catch(() => undefined)));
    this.log.info("engine stopped");
  }
}
