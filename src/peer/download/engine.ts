/** The peer's download engine: one download session per task, shared by every reader of it. */
import { KilnError } from "../../common/errors.js";
import { filterUrl, parseBlobUrl, taskIdFor } from "../../common/task-id.js";
import type { Logger } from "../../common/logger.js";
import type { DownloadSpec } from "../../api/common.js";
import { DownloadSession, newPeerId, type SessionDeps } from "./session.js";
import type { EngineScheduler } from "./scheduler-port.js";
import type { Storage } from "../storage/storage.js";
import type { StoredTask } from "../storage/stored-task.js";
import { verifiedRanges, type ByteRange } from "../storage/verified-ranges.js";

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
  /** Peer ID under which this peer holds each completed task at the scheduler. */
  private readonly registrations = new Map<string, string>();

  constructor(
    private readonly ctx: SessionDeps & { scheduler: EngineScheduler },
    readonly storage: Storage,
    private readonly log: Logger,
  ) {}

  /** Starts (or joins) the download of `spec`; resolves as soon as it is under way. */
  async download(spec: DownloadSpec): Promise<DownloadHandle> {
    const taskId = taskIdFor(spec);
    const stored = this.storage.get(taskId);
    if (stored?.complete) {
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

  private async start(taskId: string, spec: DownloadSpec): Promise<{ task: StoredTask; done: Promise<void> }> {
    let task: StoredTask;
    try {
      task = await this.storage.create(taskId, {
        url: filterUrl(spec.url, spec.filteredQueryParams),
        tag: spec.tag,
        application: spec.application,
        explicitPieceLength: spec.pieceLength ?? null,
      });
    } catch (err) {
      this.active.delete(taskId);
      throw err;
    }
    const blob = parseBlobUrl(spec.url);
    const session = new DownloadSession(this.ctx, spec, task, blob?.algorithm === "sha256" ? blob.digest : undefined);
    const release = task.acquire();
    this.sessions.set(taskId, session);
    const done = session
      .run()
      .then(
        () => void this.registrations.set(taskId, session.peerId),
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
    const task = this.storage.get(taskId);
    this.registrations.delete(taskId);
    if (!task) return session ? 0 : undefined;
    const bytes = task.bytesOnDisk;
    task.fail(err);
    await this.storage.remove(task);
    this.log.info({ task: taskId, bytes, reason }, "task deleted");
    return bytes;
  }

  /** Tells the scheduler this peer no longer holds an evicted task. */
  async evicted(task: StoredTask): Promise<void> {
    const peerId = this.registrations.get(task.taskId);
    this.registrations.delete(task.taskId);
    if (peerId) await this.ctx.scheduler.leaveTask(task.taskId, peerId).catch(() => undefined);
  }

  /**
   * Registers every completed task on disk as held by this peer, and every download
   * in progress with what it holds: after a restart, or when the scheduler forgot
   * this host, so others can fetch from it again and the downloads go on.
   */
  async reannounce(): Promise<void> {
    for (const [taskId, session] of this.sessions) {
      await session.reregister().catch((err: Error) => this.log.warn({ task: taskId, err: err.message }, "could not register a download in progress again"));
    }
    for (const task of this.storage.all()) {
      if (!task.complete || this.active.has(task.taskId)) continue;
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
        this.registrations.set(task.taskId, peerId);
      } catch (err) {
        this.log.warn({ task: task.taskId, err: (err as Error).message }, "could not re-register a held task");
      }
    }
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.registrations].map(([taskId, peerId]) => this.ctx.scheduler.leaveTask(taskId, peerId).catch(() => undefined)));
    this.log.info("engine stopped");
  }
}
