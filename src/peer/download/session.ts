/**
 * One download of one task on this peer, as an explicit state machine:
 *
 *   registering ──> p2p ──────────────> completing ──> succeeded
 *        │           │                      ^
 *        └───────────┴──> back_to_source ───┘
 *   and from any state but succeeded ──> failed
 *
 * registering: asks the scheduler for a role, again while it does not answer (up to
 * --fallback-ms); with no scheduler it goes to the origin unregistered. p2p: polls the scheduler for candidate parents and digests
 * (poller.ts), opens each parent's have feed (have-feed-client.ts) to learn what it
 * holds as it lands, and lets the dispatcher start piece fetches. back_to_source: told
 * to by the scheduler, or the scheduler is unreachable and the swarm could not serve
 * for too long: a swarm that is merely slow waits, so congestion never becomes origin
 * load. completing: every piece is stored; the blob digest is checked before the task
 * is marked complete.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { KilnError, errnoOf } from "../../common/errors.js";
import { PEER } from "../../common/defaults.js";
import { StateMachine } from "../../common/fsm.js";
import type { Logger } from "../../common/logger.js";
import type { DownloadSpec, TaskError } from "../../api/common.js";
import type { ParentInfo, PieceInfo, ScheduleReply } from "../../api/scheduler.js";
import type { PeerMetrics } from "../metrics.js";
import type { StoredTask } from "../storage/stored-task.js";
import { backToSource, type OriginSource } from "./back-to-source.js";
import { BUSY_BACKOFF_MS, PieceDispatcher, type Assignment } from "./dispatcher.js";
import type { FeedEvents, FeedSource } from "./have-feed-client.js";
import type { PieceBudget } from "./piece-budget.js";
import { failureKind, fetchPiece, type PieceSource } from "./piece-fetcher.js";
import { SchedulePoller } from "./poller.js";
import { TaskReporter, type Layout } from "./reporter.js";
import type { SessionScheduler } from "./scheduler-port.js";
import { DownloadTrail } from "./trail.js";

export interface DownloadOptions {
  concurrentPieces: number;
  piecesPerParent: number;
  pieceStallMs: number;
  noParentFallbackMs: number;
  parentsPerSchedule: number;
  /** Back-to-source: a body silent this long has stalled (PEER.originIdleTimeoutMs). */
  originIdleTimeoutMs: number;
  /** Back-to-source: Range requests to resume a broken body (PEER.originResumes). */
  originResumes: number;
}

/** Everything a session talks to; tests pass fakes. */
export interface SessionDeps {
  scheduler: SessionScheduler;
  pieces: PieceSource;
  feeds: FeedSource;
  origin: OriginSource;
  hostId: string;
  log: Logger;
  metrics: Pick<PeerMetrics, "downloadBytes" | "pieceFailures">;
  opts: DownloadOptions;
  /** Piece fetches in flight across every download of this peer. */
  budget: PieceBudget;
}

export type SessionState = "registering" | "p2p" | "back_to_source" | "completing" | "succeeded" | "failed";

const TRANSITIONS: Record<SessionState, readonly SessionState[]> = {
  registering: ["p2p", "back_to_source", "failed"],
  p2p: ["back_to_source", "completing", "failed"],
  back_to_source: ["completing", "failed"],
  completing: ["succeeded", "failed"],
  succeeded: [],
  failed: [],
};

/** First pause before asking a scheduler that did not answer again; doubles up to 8×, with jitter so peers do not come back together. */
const REGISTER_RETRY_MS = 250;

/** Starved this long with nothing in flight: ask for more parents. */
const STARVED_GROW_MS = 2_000;

export class DownloadSession {
  readonly peerId: string;
  private readonly fsm = new StateMachine<SessionState>("registering", TRANSITIONS, "download session");
  private readonly dispatcher: PieceDispatcher;
  private readonly fetches = new Map<number, AbortController>();
  /** Open have feeds, by parent: each closes its feed. */
  private readonly feeds = new Map<string, () => void>();
  /** Since when the scheduler has not answered (undefined while it does). */
  private schedulerDownSince: number | undefined;
  private readonly source = new AbortController();
  /** Set once the scheduler knows this peer; an unregistered download reports nothing. */
  private reporter: TaskReporter | undefined;
  private poller: SchedulePoller | undefined;
  private version = -1;
  /** The origin's version of the content, as the scheduler knows it from the first origin fetch. */
  private originValidator: string | undefined;
  private wantParents: number;
  private lastProgress = Date.now();
  /** When the session last asked for more parents. */
  private grewAt = 0;
  private settle!: { resolve: () => void; reject: (e: KilnError) => void };
  /** Dispatches again when a parent that answered "busy" may be asked again. */
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  /** Parents' failures and the scheduler's answers, for a failure message that says why. */
  private readonly trail = new DownloadTrail();

  constructor(
    private readonly deps: SessionDeps,
    private readonly spec: DownloadSpec,
    private readonly task: StoredTask,
    /** `sha256:<hex>` of an OCI blob: the whole content is checked against it. */
    private readonly contentDigest: string | undefined,
  ) {
    this.peerId = newPeerId(deps.hostId);
    this.wantParents = deps.opts.parentsPerSchedule;
    this.log = deps.log.child({ task: task.taskId, peer: this.peerId });
    const { concurrentPieces, piecesPerParent } = deps.opts;
    this.dispatcher = new PieceDispatcher({ concurrentPieces, piecesPerParent, busyBackoffMs: BUSY_BACKOFF_MS }, (n) => task.hasPiece(n));
    if (contentDigest) task.hashContent();
  }

  get state(): SessionState {
    return this.fsm.state;
  }

  /** Settles when the task is complete (every piece and the blob digest verified), or failed. */
  run(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    void this.register();
    return done;
  }

  /**
   * A scheduler that does not answer (overloaded, or it dropped this host and the next
   * keepalive announces it again) is asked again, with backoff, for up to --fallback-ms:
   * a thousand peers registering at once must not all turn to the origin. Only a
   * scheduler that is not there at all (connection refused), or one silent for that
   * long, sends the download to the origin without P2P.
   */
  private async register(): Promise<void> {
    const { scheduler, hostId } = this.deps;
    const started = Date.now();
    let reply: Awaited<ReturnType<typeof scheduler.registerPeer>> | undefined;
    for (let attempt = 0; !reply; attempt++) {
      try {
        reply = await scheduler.registerPeer({ peerId: this.peerId, hostId, download: this.spec });
      } catch (err) {
        if (err instanceof KilnError && err.status < 500 && err.code !== "NOT_FOUND") return this.fail(err);
        const left = this.deps.opts.noParentFallbackMs - (Date.now() - started);
        if (isConnectionRefused(err) || left <= 0) {
          // No scheduler: still serve the user, straight from the origin.
          this.log.warn({ err: (err as Error).message, attempts: attempt + 1 }, "scheduler unavailable; downloading from the origin without P2P");
          this.trail.wentToOrigin(`the scheduler did not register the download (${(err as Error).message})`);
          return this.toSource();
        }
        if (attempt === 0) this.log.info({ err: (err as Error).message }, "scheduler did not register the download; asking again");
        await sleep(Math.min(left, REGISTER_RETRY_MS * 2 ** Math.min(attempt, 3) * (0.5 + Math.random())));
        if (!this.fsm.is("registering")) return;
      }
    }
    try {
      if (reply.taskId !== this.task.taskId) {
        throw new KilnError("INTERNAL", `scheduler computed task ${reply.taskId}, this peer ${this.task.taskId}`);
      }
      // A child's pieces only make it a candidate parent: the scheduler hears of them at a coarse grain.
      this.reporter = new TaskReporter(scheduler, this.task.taskId, this.peerId, this.log, PEER.childReportDelayMs);
      // Pieces kept from before a restart are held too (and a resumed origin fetch's are canonical).
      for (const p of this.task.pieces()) this.reporter.piece(p);
      await this.apply(reply);
    } catch (err) {
      return this.fail(err);
    }
    this.poller = new SchedulePoller(
      scheduler,
      this.task.taskId,
      this.peerId,
      {
        active: () => this.fsm.is("p2p"),
        hungry: () => this.hungry(),
        urgent: () => this.dispatcher.awaitsDigest(),
        query: () => ({ since: this.version, count: Math.max(0, this.wantParents - this.dispatcher.parentCount) }),
        apply: (r) => {
          this.schedulerDownSince = undefined;
          return this.apply(r);
        },
        failed: (message) => {
          this.trail.schedulerFailed(message);
          this.schedulerDownSince ??= Date.now();
        },
        polled: () => this.checkStall(),
      },
      this.log,
    );
    void this.poller.run();
  }

  private hungry(): boolean {
    return this.dispatcher.inFlightCount < this.deps.opts.concurrentPieces;
  }

  /**
   * With nothing in flight and nothing done for too long while the scheduler does not
   * answer, stop waiting for the swarm. While it answers, it decides who goes to the
   * origin (a swarm with no holder and no origin fetcher making progress).
   */
  private checkStall(): void {
    if (!this.fsm.is("p2p") || this.dispatcher.inFlightCount > 0 || this.schedulerDownSince === undefined) return;
    const now = Date.now();
    const waited = now - Math.max(this.lastProgress, this.schedulerDownSince);
    if (waited < this.deps.opts.noParentFallbackMs) return;
    this.log.warn({ waitedMs: waited }, "scheduler unreachable and the swarm cannot serve; falling back to the origin");
    this.trail.wentToOrigin(`the scheduler did not answer and nothing arrived for ${Math.round(waited / 1000)} s`);
    this.toSource();
  }

  private async apply(reply: ScheduleReply): Promise<void> {
    this.trail.scheduled(
      reply.action,
      reply.parents.map((p) => p.peerId),
    );
    if (reply.action === "failed") return this.fail(taskErrorToKiln(reply.task.error));
    if (!this.fsm.is("registering", "p2p")) return;
    this.version = reply.version;
    this.dispatcher.addDigests(reply.pieces);
    const { contentLength, pieceLength } = reply.task;
    this.originValidator = reply.task.validator ?? this.originValidator;
    // Before the layout: a reader that sees the layout sees who the content may go to.
    if (reply.task.access) this.task.meta.access ??= reply.task.access;
    const meta = this.task.meta;
    if (pieceLength !== null && (meta.pieceLength === null || (contentLength !== null && meta.contentLength === null))) {
      await this.task.setLayout(contentLength, pieceLength);
    }
    for (const parent of this.dispatcher.addParents(reply.parents)) this.openFeed(parent);
    if (reply.action === "back_to_source") {
      this.trail.wentToOrigin(
        this.fsm.is("registering") ? "the scheduler made this peer the task's origin fetcher" : "the scheduler sent it there (no holder could serve)",
      );
      return this.toSource();
    }
    this.fsm.to("p2p");
    this.dispatch();
    void this.checkComplete();
  }

  private openFeed(parent: ParentInfo): void {
    const events: FeedEvents = {
      bits: (id, pieces) => {
        this.dispatcher.parentHolds(id, pieces);
        this.dispatch();
        if (this.dispatcher.awaitsDigest()) this.poller?.hurry();
      },
      have: (id, n) => {
        this.dispatcher.parentHas(id, n);
        this.dispatch();
        if (!this.dispatcher.digest(n) && !this.task.hasPiece(n)) this.poller?.hurry();
      },
      closed: (id, reason) => {
        this.feeds.delete(id);
        this.dispatcher.removeParent(id);
        if (!this.fsm.is("p2p")) return;
        this.log.debug({ parent: id, reason }, "have feed closed");
        this.poller?.wake();
      },
    };
    this.feeds.set(parent.peerId, this.deps.feeds.open(parent, this.task.taskId, events));
  }

  /** Called by the host's piece budget when a slot this download waited for frees. */
  private readonly dispatchWhenFree = () => this.dispatch();

  private dispatch(): void {
    if (!this.fsm.is("p2p") || this.task.meta.pieceLength === null) return;
    const now = Date.now();
    const { budget } = this.deps;
    const { assignments, starved, overBudget } = this.dispatcher.assign(now, budget.free);
    budget.take(assignments.length);
    for (const a of assignments) void this.fetch(a);
    if (overBudget) budget.waitForSlot(this.dispatchWhenFree);
    if (starved && now - Math.max(this.lastProgress, this.grewAt) > STARVED_GROW_MS && this.wantParents < PEER.maxParents) {
      this.wantParents = Math.min(PEER.maxParents, this.wantParents + this.deps.opts.parentsPerSchedule);
      this.grewAt = now;
    }
    if (!this.hungry()) return;
    this.poller?.wake();
    // A free slot while parents back off: try them again when they may have room, not at the next poll.
    const retryAt = this.dispatcher.nextRetryAt(now);
    if (retryAt !== undefined && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.dispatch();
      }, retryAt - now);
    }
  }

  private async fetch(a: Assignment): Promise<void> {
    const ac = new AbortController();
    this.fetches.set(a.piece, ac);
    try {
      const info = await fetchPiece(this.deps.pieces, this.task, a, ac.signal);
      this.dispatcher.succeeded(a);
      this.pieceDone(info, "p2p");
    } catch (err) {
      if (!this.fsm.is("p2p") || ac.signal.aborted) return this.dispatcher.release(a);
      // Our own disk failing is not the parent's fault, and no other parent can fix it.
      if (err instanceof KilnError && err.code === "DISK_FULL") {
        this.dispatcher.release(a);
        return void this.fail(err);
      }
      const kind = failureKind(err);
      this.deps.metrics.pieceFailures.inc({ kind });
      this.dispatcher.failed(a, kind, Date.now());
      const message = (err as Error).message;
      this.trail.pieceFailed(a.parent.peerId, a.piece, kind, message);
      if (kind !== "busy") {
        this.log.warn({ parent: a.parent.peerId, piece: a.piece, kind, err: message }, "piece failed; retrying on another parent");
        this.reporter?.failure({ parentId: a.parent.peerId, pieceNumber: a.piece, kind, message });
      }
    } finally {
      this.fetches.delete(a.piece);
      this.deps.budget.release();
      this.dispatch();
    }
  }

  private pieceDone(info: PieceInfo, source: "p2p" | "origin"): void {
    this.deps.metrics.downloadBytes.inc({ source }, info.length);
    this.lastProgress = Date.now();
    if (!this.fsm.is("p2p", "back_to_source")) return;
    this.reporter?.piece(info);
    void this.checkComplete();
  }

  private toSource(): void {
    if (!this.fsm.can("back_to_source")) return;
    this.fsm.to("back_to_source");
    // Children wait for the origin fetcher's digests: its reports go out at once.
    if (this.reporter) this.reporter.delayMs = PEER.reportDelayMs;
    this.stop();
    const hooks = {
      layout: (layout: Layout) => this.reporter?.flush(layout) ?? Promise.resolve(),
      piece: (info: PieceInfo) => this.pieceDone(info, "origin"),
      known: (n: number) => this.dispatcher.digest(n),
    };
    const limits = {
      idleTimeoutMs: this.deps.opts.originIdleTimeoutMs,
      resumes: this.deps.opts.originResumes,
      ...(this.originValidator ? { validator: this.originValidator } : {}),
    };
    backToSource(this.deps.origin, this.spec, this.task, hooks, this.source.signal, this.log, limits).then(
      () => this.checkComplete(),
      (err) => this.fail(err),
    );
  }

  private async checkComplete(): Promise<void> {
    const total = this.task.totalPieces;
    if (!this.fsm.is("p2p", "back_to_source") || total === null || this.task.finishedPieces < total) return;
    this.fsm.to("completing");
    try {
      const contentLength = this.task.meta.contentLength!;
      if (this.contentDigest) {
        const actual = await this.task.contentDigest();
        if (actual !== this.contentDigest) {
          throw new KilnError("DIGEST_MISMATCH", `content digest ${actual} does not match the blob digest ${this.contentDigest}`);
        }
      }
      await this.task.markComplete(contentLength);
      this.fsm.to("succeeded");
      this.stop();
      await this.reporter?.result({ state: "succeeded", contentLength });
      this.log.info({ contentLength, pieces: total, polls: this.poller?.polls ?? 0, reports: this.reporter?.sent ?? 0 }, "download complete");
      this.settle.resolve();
    } catch (err) {
      await this.fail(err);
    }
  }

  /**
   * The scheduler forgot this download (it restarted): registers it again under the
   * same peer ID with what it holds, so it goes on where it was (an origin fetch stays
   * this peer's). Reports made meanwhile were refused; the pieces listed replace them.
   */
  async reregister(): Promise<void> {
    if (!this.reporter || !this.fsm.is("p2p", "back_to_source")) return;
    const fromOrigin = this.fsm.is("back_to_source");
    const { contentLength, pieceLength } = this.task.meta;
    const reply = await this.deps.scheduler.registerPeer({
      peerId: this.peerId,
      hostId: this.deps.hostId,
      download: this.spec,
      resumed: {
        contentLength,
        pieceLength,
        pieces: this.task.pieces(),
        fromOrigin,
        ...(fromOrigin && this.originValidator ? { validator: this.originValidator } : {}),
        ...(this.task.meta.access ? { access: this.task.meta.access } : {}),
      },
    });
    this.log.info({ pieces: this.task.finishedPieces, fromOrigin }, "registered again with a restarted scheduler");
    // The fetch from the origin goes on by itself; a p2p download takes the new parents and digests.
    if (!fromOrigin) {
      this.version = -1;
      await this.apply(reply);
    }
  }

  /** Ends the download now as failed with `err` (the task was deleted): readers get the error, never more bytes. */
  abort(err: KilnError): Promise<void> {
    return this.fail(err);
  }

  private async fail(err: unknown): Promise<void> {
    if (this.fsm.is("succeeded", "failed")) return;
    this.fsm.to("failed");
    this.stop();
    this.source.abort();
    const error = this.explained(toKilnError(err));
    this.log.warn({ code: error.code, err: error.message }, "download failed");
    const wire: TaskError = { code: error.code, status: error.status, message: error.message };
    await this.reporter?.result({ state: "failed", error: wire });
    this.settle.reject(error);
  }

  /**
   * The error with what the download went through (pieces, parents, scheduler), unless
   * it needs no more: the task was deleted, or the scheduler failed it before any
   * piece moved (the origin's own answer, such as a 404, says it all).
   */
  private explained(error: KilnError): KilnError {
    if (error.code === "GONE" || this.task.totalPieces === null) return error;
    const summary = this.trail.summary(this.task.finishedPieces, this.task.totalPieces);
    return new KilnError(error.code, `${error.message} (${summary})`, error.status, error.retryAfterSeconds, { cause: error.cause });
  }

  /** Out of p2p: no more fetches, retries, feeds or polls. */
  private stop(): void {
    clearTimeout(this.retryTimer);
    this.deps.budget.forget(this.dispatchWhenFree);
    for (const ac of this.fetches.values()) ac.abort();
    for (const close of this.feeds.values()) close();
    this.feeds.clear();
    this.poller?.wake();
  }
}

/** Nobody listens at the scheduler's address: waiting will not make it answer. */
function isConnectionRefused(err: unknown): boolean {
  return errnoOf(err) === "ECONNREFUSED";
}

/** A peer's ID on one task: its host and a random suffix. */
export function newPeerId(hostId: string): string {
  return `${hostId}_${randomUUID().slice(0, 8)}`;
}

function toKilnError(err: unknown): KilnError {
  if (err instanceof KilnError) return err;
  return new KilnError("INTERNAL", (err as Error)?.message ?? String(err));
}

function taskErrorToKiln(e: TaskError | null): KilnError {
  if (!e) return new KilnError("INTERNAL", "task failed without a reason");
  return new KilnError((e.code as KilnError["code"]) ?? "INTERNAL", e.message, e.status);
}
