/**
 * Drives one download of one task on this peer: registers with the scheduler,
 * fetches pieces from several parents at once (as they get them), verifies each
 * against the canonical digest, retries elsewhere on failure, and goes back to
 * source when told to or when the swarm cannot serve.
 */
import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { KilnError, describeNetworkError } from "../common/errors.js";
import { BitSet } from "../common/bitset.js";
import { defaultPieceLength } from "../common/piece.js";
import type { Logger } from "../common/logger.js";
import type { DownloadSpec, TaskError } from "../api/common.js";
import type { ParentInfo, PieceInfo, ScheduleReply } from "../api/scheduler.js";
import type { SchedulerClient } from "../api/scheduler-client.js";
import type { StoredTask } from "./stored-task.js";
import { redact } from "../common/redact.js";
import { fetchOrigin } from "./origin.js";
import { failureKind, fetchPiece } from "./piece-client.js";
import type { PeerMetrics } from "./metrics.js";

export interface ConductorOptions {
  concurrentPieces: number;
  piecesPerParent: number;
  pieceStallMs: number;
  noParentFallbackMs: number;
  parentsPerSchedule: number;
}

export interface ConductorContext {
  scheduler: SchedulerClient;
  hostId: string;
  log: Logger;
  metrics: PeerMetrics;
  opts: ConductorOptions;
}

interface ParentState {
  info: ParentInfo;
  pieces: BitSet;
  inFlight: number;
  busyUntil: number;
}

const REPORT_DELAY_MS = 30;

export class Conductor {
  readonly peerId: string;
  private version = -1;
  private readonly digests = new Map<number, PieceInfo>();
  private readonly parents = new Map<string, ParentState>();
  private readonly blocked = new Set<string>();
  private readonly inFlight = new Map<number, AbortController>();
  private pendingReports: PieceInfo[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  private reporting: Promise<void> = Promise.resolve();
  private registered = false;
  private sourcing = false;
  private finished = false;
  private completing = false;
  private wantParents: number;
  private lastProgress = Date.now();
  private settle!: { resolve: () => void; reject: (e: KilnError) => void };
  private readonly log: Logger;

  constructor(
    private readonly ctx: ConductorContext,
    private readonly spec: DownloadSpec,
    private readonly task: StoredTask,
    /** `sha256:<hex>` of an OCI blob: the whole content is checked against it. */
    private readonly contentDigest: string | undefined,
  ) {
    this.peerId = newPeerId(ctx.hostId);
    this.wantParents = ctx.opts.parentsPerSchedule;
    this.log = ctx.log.child({ task: task.taskId, peer: this.peerId });
  }

  run(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    void this.start();
    return done;
  }

  private async start(): Promise<void> {
    try {
      const reply = await this.ctx.scheduler.registerPeer({ peerId: this.peerId, hostId: this.ctx.hostId, download: this.spec });
      if (reply.taskId !== this.task.taskId) {
        throw new KilnError("INTERNAL", `scheduler computed task ${reply.taskId}, this peer ${this.task.taskId}`);
      }
      this.registered = true;
      await this.apply(reply);
      void this.pollLoop();
    } catch (err) {
      if (this.registered || (err instanceof KilnError && err.status < 500 && err.code !== "NOT_FOUND")) return this.fail(err);
      // No scheduler: still serve the user, straight from the origin.
      this.log.warn({ err: (err as Error).message }, "scheduler unavailable; downloading from the origin without P2P");
      this.startBackToSource();
    }
  }

  private async pollLoop(): Promise<void> {
    let errors = 0;
    while (!this.finished && !this.sourcing) {
      try {
        const reply = await this.ctx.scheduler.schedule(this.task.taskId, this.peerId, { since: this.version, count: this.wantParents });
        errors = 0;
        await this.apply(reply);
      } catch (err) {
        if (this.finished) return;
        errors++;
        this.log.warn({ err: (err as Error).message, errors }, "schedule call failed");
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** errors)));
      }
      this.checkStall();
    }
  }

  /** With nothing in flight and nothing done for too long, stop waiting for the swarm. */
  private checkStall(): void {
    if (this.finished || this.sourcing || this.inFlight.size > 0) return;
    if (Date.now() - this.lastProgress < this.ctx.opts.noParentFallbackMs) return;
    this.log.warn({ waitedMs: Date.now() - this.lastProgress }, "swarm cannot serve; falling back to the origin");
    this.startBackToSource();
  }

  private async apply(reply: ScheduleReply): Promise<void> {
    this.version = reply.version;
    for (const p of reply.pieces) this.digests.set(p.number, p);
    const t = reply.task;
    if (t.pieceLength !== null && this.task.meta.pieceLength === null) await this.task.setLayout(t.contentLength, t.pieceLength);
    else if (t.contentLength !== null && this.task.meta.contentLength === null && t.pieceLength !== null) {
      await this.task.setLayout(t.contentLength, t.pieceLength);
    }
    for (const info of reply.parents) {
      const existing = this.parents.get(info.peerId);
      const pieces = BitSet.fromBase64(info.pieces);
      if (existing) Object.assign(existing, { info, pieces });
      else this.parents.set(info.peerId, { info, pieces, inFlight: 0, busyUntil: 0 });
    }
    switch (reply.action) {
      case "failed":
        return this.fail(taskErrorToKiln(t.error));
      case "back_to_source":
        return this.startBackToSource();
      default:
        this.dispatch();
        void this.checkComplete();
    }
  }

  /** Starts piece fetches, lowest piece first, up to the concurrency limits. */
  private dispatch(): void {
    if (this.finished || this.sourcing || this.task.meta.pieceLength === null) return;
    const now = Date.now();
    let starved = false;
    const numbers = [...this.digests.keys()].sort((a, b) => a - b);
    for (const n of numbers) {
      if (this.inFlight.size >= this.ctx.opts.concurrentPieces) break;
      if (this.task.hasPiece(n) || this.inFlight.has(n)) continue;
      let best: ParentState | undefined;
      for (const p of this.parents.values()) {
        if (this.blocked.has(p.info.peerId) || !p.pieces.has(n) || p.busyUntil > now) continue;
        if (p.inFlight >= this.ctx.opts.piecesPerParent) continue;
        if (!best || p.inFlight < best.inFlight) best = p;
      }
      if (best) this.fetch(n, best, this.digests.get(n)!);
      else starved = true;
    }
    if (starved && this.inFlight.size === 0) this.wantParents = Math.min(64, this.wantParents * 2);
  }

  private fetch(n: number, parent: ParentState, expected: PieceInfo): void {
    const ac = new AbortController();
    this.inFlight.set(n, ac);
    parent.inFlight++;
    const parentId = parent.info.peerId;
    void (async () => {
      try {
        const body = await fetchPiece(parent.info, this.task.taskId, n, this.ctx.opts.pieceStallMs, ac.signal);
        const info = await this.task.writePiece(n, body, expected);
        this.ctx.metrics.downloadBytes.inc({ source: "p2p" }, info.length);
        // A parent's bitmap only grows; learn from what it just served.
        parent.pieces.add(n);
        this.pieceDone(info);
      } catch (err) {
        if (this.finished || ac.signal.aborted) return;
        // Our own disk failing is not the parent's fault, and no other parent can fix it.
        if (err instanceof KilnError && err.code === "DISK_FULL") return void this.fail(err);
        const kind = failureKind(err);
        this.ctx.metrics.pieceFailures.inc({ kind });
        if (kind === "busy") {
          parent.busyUntil = Date.now() + 200;
        } else {
          this.blocked.add(parentId);
          this.log.warn({ parent: parentId, piece: n, kind, err: (err as Error).message }, "piece failed; retrying on another parent");
          this.ctx.scheduler
            .reportFailure(this.task.taskId, this.peerId, { parentId, pieceNumber: n, kind, message: (err as Error).message.slice(0, 2000) })
            .catch(() => undefined);
        }
      } finally {
        this.inFlight.delete(n);
        parent.inFlight--;
        this.dispatch();
      }
    })();
  }

  private pieceDone(info: PieceInfo): void {
    this.lastProgress = Date.now();
    this.queueReport(info);
    void this.checkComplete();
  }

  private queueReport(info: PieceInfo): void {
    if (!this.registered) return;
    this.pendingReports.push(info);
    this.reportTimer ??= setTimeout(() => {
      this.reportTimer = undefined;
      void this.flushReports();
    }, REPORT_DELAY_MS);
  }

  private flushReports(extra: { contentLength?: number | null; pieceLength?: number } = {}): Promise<void> {
    if (!this.registered) return Promise.resolve();
    const pieces = this.pendingReports;
    this.pendingReports = [];
    if (!pieces.length && extra.contentLength === undefined && extra.pieceLength === undefined) return this.reporting;
    // Reports go out in order: metadata before pieces, pieces before the result.
    this.reporting = this.reporting.then(async () => {
      try {
        const r = await this.ctx.scheduler.reportPieces(this.task.taskId, this.peerId, { ...extra, pieces });
        if (r.rejected.length) this.log.warn({ rejected: r.rejected.slice(0, 3) }, "scheduler rejected piece reports");
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "piece report failed");
      }
    });
    return this.reporting;
  }

  private startBackToSource(): void {
    if (this.sourcing || this.finished) return;
    this.sourcing = true;
    for (const ac of this.inFlight.values()) ac.abort();
    this.backToSource().catch((err) => this.fail(err));
  }

  /** Fetches from the origin (from the first missing piece on) and cuts it into pieces. */
  private async backToSource(): Promise<void> {
    const meta = this.task.meta;
    let from = 0;
    if (meta.pieceLength !== null) {
      let first = 0;
      while (this.task.hasPiece(first)) first++;
      from = first * meta.pieceLength;
      if (meta.contentLength !== null && from >= meta.contentLength) return this.checkComplete();
    }
    this.log.info({ url: redact(this.spec.url), from }, "fetching from the origin");
    const origin = await fetchOrigin(this.spec.url, this.spec.headers, { from });
    const pieceLength = meta.pieceLength ?? this.spec.pieceLength ?? defaultPieceLength(origin.contentLength ?? undefined);
    await this.task.setLayout(origin.contentLength, pieceLength);
    await this.flushReports({ contentLength: origin.contentLength, pieceLength });

    let offset = origin.offset;
    if (offset % pieceLength !== 0) throw new KilnError("ORIGIN_STATUS", `origin answered a range starting at ${offset}, not a piece boundary`, 502);
    let chunks: Buffer[] = [];
    let buffered = 0;
    const writeBuffered = async () => {
      const n = Math.floor(offset / pieceLength);
      if (!this.task.hasPiece(n)) {
        const known = this.digests.get(n);
        const info = await this.task.writePiece(n, iterate(chunks), known);
        this.ctx.metrics.downloadBytes.inc({ source: "origin" }, info.length);
        this.pieceDone(info);
      }
      offset += buffered;
      chunks = [];
      buffered = 0;
    };
    try {
      for await (const chunk of origin.body as AsyncIterable<Buffer>) {
        if (this.finished) {
          origin.body.destroy();
          return;
        }
        let rest = chunk;
        while (rest.length) {
          const take = Math.min(rest.length, pieceLength - buffered);
          chunks.push(rest.subarray(0, take));
          buffered += take;
          rest = rest.subarray(take);
          if (buffered === pieceLength) await writeBuffered();
        }
      }
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new KilnError("ORIGIN_UNREACHABLE", `origin transfer broke after ${offset + buffered} bytes: ${describeNetworkError(err)}`);
    }
    if (buffered > 0) await writeBuffered();
    const total = offset;
    if (origin.contentLength !== null && total !== origin.contentLength) {
      throw new KilnError("ORIGIN_UNREACHABLE", `origin closed the connection after ${total} of ${origin.contentLength} bytes`);
    }
    if (meta.contentLength === null) {
      await this.task.setLayout(total, pieceLength);
      await this.flushReports({ contentLength: total });
    }
    await this.checkComplete();
  }

  private async checkComplete(): Promise<void> {
    const total = this.task.totalPieces;
    if (this.finished || this.completing || total === null || this.task.finishedPieces < total) return;
    this.completing = true;
    try {
      const contentLength = this.task.meta.contentLength!;
      if (this.contentDigest) {
        const actual = await fileDigest(this.task.contentPath);
        if (actual !== this.contentDigest) {
          throw new KilnError("DIGEST_MISMATCH", `content digest ${actual} does not match the blob digest ${this.contentDigest}`);
        }
      }
      await this.task.markComplete(contentLength);
      await this.flushReports();
      this.finished = true;
      if (this.registered) {
        await this.ctx.scheduler
          .reportResult(this.task.taskId, this.peerId, { state: "succeeded", contentLength })
          .catch((err) => this.log.warn({ err: (err as Error).message }, "result report failed"));
      }
      this.log.info({ contentLength, pieces: total }, "download complete");
      this.settle.resolve();
    } catch (err) {
      this.completing = false;
      await this.fail(err);
    }
  }

  private async fail(err: unknown): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    for (const ac of this.inFlight.values()) ac.abort();
    const error = toKilnError(err);
    this.log.warn({ code: error.code, err: error.message }, "download failed");
    if (this.registered) {
      await this.flushReports();
      const wire: TaskError = { code: error.code, status: error.status, message: error.message };
      await this.ctx.scheduler.reportResult(this.task.taskId, this.peerId, { state: "failed", error: wire }).catch(() => undefined);
    }
    this.settle.reject(error);
  }
}

/** A peer's ID on one task: its host and a random suffix. */
export function newPeerId(hostId: string): string {
  return `${hostId}_${randomUUID().slice(0, 8)}`;
}

async function* iterate(chunks: Buffer[]): AsyncIterable<Buffer> {
  yield* chunks;
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) h.update(chunk as Buffer);
  return "sha256:" + h.digest("hex");
}

function toKilnError(err: unknown): KilnError {
  if (err instanceof KilnError) return err;
  return new KilnError("INTERNAL", (err as Error)?.message ?? String(err));
}

function taskErrorToKiln(e: TaskError | null): KilnError {
  if (!e) return new KilnError("INTERNAL", "task failed without a reason");
  return new KilnError((e.code as KilnError["code"]) ?? "INTERNAL", e.message, e.status);
}
