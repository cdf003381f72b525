/**
 * One node's download in the simulator: the glue of src/peer/download/session.ts
 * with the network and disk replaced. The decisions are kiln's own objects, driven
 * as the session drives them: PieceDispatcher (which piece from which parent, limits,
 * busy/stall backoff, blocking), SchedulePoller (when to ask the scheduler again and
 * for how many parents), TaskReporter (batched piece reports, failures, the result).
 * What is restated here, in session.ts's order: register → apply the answer (digests,
 * layout, new parents' have feeds, back_to_source) → dispatch on every have, answer
 * and finished piece → ask for more parents after 2 s starved → report a failed
 * parent (not a busy one) → complete when every piece is held. Not modelled: the
 * scheduler being unreachable (it always answers here, so the no-scheduler fallback
 * to the origin never fires), the 10 s piece stall (flows always progress), digests
 * that fail, and the blob digest check at the end.
 */
import { BitSet } from "../src/common/bitset.js";
import { PEER } from "../src/common/defaults.js";
import { defaultPieceLength } from "../src/common/piece.js";
import { decodeHaveFeedLine } from "../src/api/peer.js";
import type { ParentInfo, PieceInfo, ScheduleReply } from "../src/api/scheduler.js";
import { BUSY_BACKOFF_MS, PieceDispatcher, type Assignment } from "../src/peer/download/dispatcher.js";
import type { PieceFailureKind } from "../src/peer/download/piece-fetcher.js";
import { SchedulePoller } from "../src/peer/download/poller.js";
import { TaskReporter } from "../src/peer/download/reporter.js";
import type { SessionScheduler } from "../src/peer/download/scheduler-port.js";
import { pino } from "pino";
import { SimResponse, SimStore, type RunOptions, type SimNode, type Swarm } from "./swarm.js";

/** Starved this long with nothing in flight: ask for more parents (session.ts). */
const STARVED_GROW_MS = 2_000;
/** A connection to a host that is gone fails after this long (no answer to the SYN). */
const CONNECT_TIMEOUT_MS = 3_000;

/** Reserved: a hook to observe the dispatcher's assignments (tests compare them with a fresh dispatcher's). */
export type DispatchRule = (assignments: Assignment[], dispatcher: PieceDispatcher) => void;

const silent = pino({ level: "silent" });

export class SimDownload {
  state: "registering" | "p2p" | "back_to_source" | "succeeded" | "failed" = "registering";
  readonly peerId: string;
  readonly dispatcher: PieceDispatcher;
  private readonly scheduler: SessionScheduler;
  private reporter: TaskReporter | undefined;
  private poller: SchedulePoller | undefined;
  private readonly feeds = new Map<string, SimResponse>();
  /** Piece fetches in flight: how to cancel each. */
  private readonly fetches = new Map<number, () => void>();
  private version = -1;
  private wantParents: number;
  private lastProgress: number;
  private grewAt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private taskId = "";
  private pieceLength: number | null = null;
  private total: number | null = null;
  private readonly store: SimStore;
  private readonly opts: { concurrentPieces: number; piecesPerParent: number; parentsPerSchedule: number };

  constructor(
    private readonly swarm: Swarm,
    private readonly node: SimNode,
    run: RunOptions,
  ) {
    this.peerId = `${node.hostId}_p`;
    this.opts = { concurrentPieces: PEER.concurrentPieces, piecesPerParent: PEER.piecesPerParent, parentsPerSchedule: PEER.parents, ...run.download };
    this.wantParents = this.opts.parentsPerSchedule;
    this.lastProgress = Date.now();
    this.store = node.store!;
    this.scheduler = swarm.schedulerFor(node);
    const { concurrentPieces, piecesPerParent } = this.opts;
    this.dispatcher = new PieceDispatcher({ concurrentPieces, piecesPerParent, busyBackoffMs: BUSY_BACKOFF_MS }, (n) => this.store.has(n));
    this.rule = run.dispatchRule;
  }

  private readonly rule: DispatchRule | undefined;

  run(): void {
    void this.register();
  }

  private async register(): Promise<void> {
    let reply: Awaited<ReturnType<SessionScheduler["registerPeer"]>>;
    try {
      reply = await this.scheduler.registerPeer({ peerId: this.peerId, hostId: this.node.hostId, download: this.swarm.spec });
    } catch (err) {
      if (process.env.SIM_DEBUG) console.error(this.node.hostId, "register failed", err);
      return this.fail();
    }
    this.taskId = reply.taskId;
    this.reporter = new TaskReporter(this.scheduler, this.taskId, this.peerId, silent, PEER.childReportDelayMs);
    this.apply(reply);
    this.poller = new SchedulePoller(
      this.scheduler,
      this.taskId,
      this.peerId,
      {
        active: () => this.state === "p2p",
        hungry: () => this.hungry(),
        urgent: () => this.dispatcher.awaitsDigest(),
        query: () => ({ since: this.version, count: Math.max(0, this.wantParents - this.dispatcher.parentCount) }),
        apply: async (r) => this.apply(r),
        failed: () => {},
        polled: () => {},
      },
      silent,
    );
    void this.poller.run();
  }

  private hungry(): boolean {
    return this.dispatcher.inFlightCount < this.opts.concurrentPieces;
  }

  private apply(reply: ScheduleReply): void {
    if (reply.action === "failed") return this.fail();
    if (this.state !== "registering" && this.state !== "p2p") return;
    this.version = reply.version;
    this.dispatcher.addDigests(reply.pieces);
    const { contentLength, pieceLength } = reply.task;
    if (pieceLength !== null && contentLength !== null && this.pieceLength === null) this.setLayout(pieceLength);
    for (const parent of this.dispatcher.addParents(reply.parents)) this.openFeed(parent);
    if (reply.action === "back_to_source") return this.toSource();
    this.state = "p2p";
    this.dispatch();
    this.checkComplete();
  }

  private setLayout(pieceLength: number): void {
    this.pieceLength = pieceLength;
    this.total = this.swarm.totalPieces(pieceLength);
  }

  private openFeed(parent: ParentInfo): void {
    const pnode = this.swarm.node(parent.hostId);
    const closed = () => {
      this.feeds.delete(parent.peerId);
      this.dispatcher.removeParent(parent.peerId);
      if (this.state === "p2p") this.poller?.wake();
    };
    if (!pnode?.alive) {
      this.swarm.clock.after(CONNECT_TIMEOUT_MS, closed);
      return;
    }
    const res = this.swarm.subscribe(pnode, this.node, (text, at, from) => this.inbox(parent.peerId, text, at, from));
    // The parent closing the feed (it died, or dropped the task) reaches the child half a round trip later.
    const lat = this.swarm.rtt(pnode, this.node) / 2;
    res.once("close", () => {
      if (this.feeds.get(parent.peerId) === res) this.swarm.clock.after(lat, closed);
    });
    this.feeds.set(parent.peerId, res);
  }

  /** Feed lines waiting to be handled, by when: one event (and one dispatch) per batch. */
  private pending: { at: number; lines: [string, string, SimResponse][] } | undefined;

  private inbox(parentId: string, text: string, arriveAt: number, from: SimResponse): void {
    const grid = this.swarm.scenario.feedBatchMs;
    const at = grid > 0 ? Math.ceil(arriveAt / grid) * grid : arriveAt;
    if (this.pending?.at === at) {
      this.pending.lines.push([parentId, text, from]);
      return;
    }
    const batch = { at, lines: [[parentId, text, from]] as [string, string, SimResponse][] };
    this.pending = batch;
    this.swarm.clock.at(at, () => {
      if (this.pending === batch) this.pending = undefined;
      if (this.state !== "p2p") return;
      for (const [id, line, res] of batch.lines) {
        if (res.closed) continue;
        const l = decodeHaveFeedLine(line.trimEnd());
        if (!l) continue;
        if (l.type === "have") this.dispatcher.parentHas(id, l.piece);
        else this.dispatcher.parentHolds(id, BitSet.fromBase64(l.base64));
      }
      this.dispatch();
      if (this.dispatcher.awaitsDigest()) this.poller?.hurry();
    });
  }

  private dispatch(): void {
    if (this.state !== "p2p" || this.pieceLength === null) return;
    const now = Date.now();
    const { assignments, starved } = this.dispatcher.assign(now);
    this.rule?.(assignments, this.dispatcher);
    for (const a of assignments) this.fetch(a);
    if (starved && now - Math.max(this.lastProgress, this.grewAt) > STARVED_GROW_MS && this.wantParents < PEER.maxParents) {
      this.wantParents = Math.min(PEER.maxParents, this.wantParents + this.opts.parentsPerSchedule);
      this.grewAt = now;
    }
    if (!this.hungry()) return;
    this.poller?.wake();
    const retryAt = this.dispatcher.nextRetryAt(now);
    if (retryAt !== undefined && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.dispatch();
      }, retryAt - now);
    }
  }

  /** One piece request to a parent's upload port: a slot (or the line, or busy), the bytes, the verified piece. */
  private fetch(a: Assignment): void {
    const swarm = this.swarm;
    const clock = swarm.clock;
    const parent = swarm.node(a.parent.hostId);
    const rtt = swarm.rtt(parent, this.node);
    let over = false;
    const end = (kind: PieceFailureKind | undefined) => {
      if (over) return;
      over = true;
      this.fetches.delete(a.piece);
      this.node.onDeath.delete(cancel);
      if (this.state !== "p2p") {
        this.dispatcher.release(a);
        return;
      }
      if (kind === undefined) {
        this.dispatcher.succeeded(a);
        this.pieceDone(a.expected);
      } else {
        this.dispatcher.failed(a, kind, Date.now());
        if (kind !== "busy") this.reporter?.failure({ parentId: a.parent.peerId, pieceNumber: a.piece, kind, message: kind });
      }
      this.dispatch();
    };
    // Cancelled by this node (its download stopped, or it died): the parent sees the connection close.
    let res: SimResponse | undefined;
    let stopUpload: (() => void) | undefined;
    const cancel = () => {
      if (over) return;
      over = true;
      this.fetches.delete(a.piece);
      stopUpload?.();
      res?.destroy();
      this.dispatcher.release(a);
    };
    this.fetches.set(a.piece, cancel);
    this.node.onDeath.add(cancel);
    if (!parent?.alive) {
      clock.after(CONNECT_TIMEOUT_MS, () => end("unreachable"));
      return;
    }
    clock.after(rtt / 2, () => {
      if (over) return;
      if (!parent.alive) return void clock.after(CONNECT_TIMEOUT_MS, () => end("unreachable"));
      if (!parent.store?.has(a.piece)) return void clock.after(rtt / 2, () => end("http_error"));
      const r = new SimResponse();
      res = r;
      parent.served.add(r);
      // Waiting in the parent's line moves no byte: the child's stall timer (--piece-stall) runs.
      const stall =
        parent.slots.free > 0
          ? undefined
          : clock.after(PEER.pieceStallMs, () => {
              r.destroy();
              end("timeout");
            });
      void parent.slots.acquire(r as never).then((answer) => {
        if (stall) clock.cancel(stall);
        if (answer !== "granted") {
          parent.served.delete(r);
          if (answer === "full") clock.after(rtt / 2, () => end("busy"));
          // The parent died with the request in its line: the connection breaks.
          else if (!parent.alive) clock.after(rtt / 2, () => end("unreachable"));
          return;
        }
        if (over || !parent.alive) {
          parent.slots.release();
          return;
        }
        const uploadEnded = parent.feeds.uploadStarted(this.taskId, a.piece);
        const length = a.expected.length;
        let flowDone = false;
        const flow = swarm.net.start(parent.link, this.node.link, length, () => {
          flowDone = true;
          parent.slots.release();
          uploadEnded(true);
          parent.bytesServed += length;
          parent.served.delete(r);
          parent.onDeath.delete(parentDied);
          // The last byte reaches the child half a round trip after it left.
          clock.after(rtt / 2, () => end(undefined));
        });
        const parentDied = () => {
          if (flowDone) return;
          swarm.net.abort(flow);
          uploadEnded(false);
          clock.after(rtt / 2, () => end("unreachable"));
        };
        parent.onDeath.add(parentDied);
        stopUpload = () => {
          if (flowDone) return;
          flowDone = true;
          swarm.net.abort(flow);
          parent.onDeath.delete(parentDied);
          parent.slots.release();
          uploadEnded(false);
          parent.served.delete(r);
        };
      });
    });
  }

  private pieceDone(info: PieceInfo): void {
    this.lastProgress = Date.now();
    this.store.add(info);
    this.reporter?.piece(info);
    this.checkComplete();
  }

  /** The origin fetch: one GET from the first missing piece, the body cut into pieces as it arrives (back-to-source.ts). */
  private toSource(): void {
    if (this.state === "back_to_source" || this.state === "succeeded" || this.state === "failed") return;
    this.state = "back_to_source";
    if (this.reporter) this.reporter.delayMs = PEER.reportDelayMs;
    this.stop();
    const swarm = this.swarm;
    const pieceLength = this.pieceLength ?? defaultPieceLength(swarm.scenario.sizeBytes);
    const first = this.pieceLength === null;
    this.setLayout(pieceLength);
    const total = this.total!;
    let n = 0;
    const next = () => {
      if (this.state !== "back_to_source" || !this.node.alive) return;
      while (n < total && this.store.has(n)) n++;
      if (n >= total) return this.checkComplete();
      const info = swarm.pieceInfo(n, pieceLength);
      const flow = swarm.net.start(swarm.origin, this.node.link, info.length, () => {
        this.node.onDeath.delete(died);
        swarm.originBytes += info.length;
        this.pieceDone(info);
        next();
      });
      const died = () => swarm.net.abort(flow);
      this.node.onDeath.add(died);
    };
    // The origin's answer (headers) a round trip after the request; the layout goes to the scheduler first.
    swarm.clock.after(swarm.rtt(this.node, undefined), () => {
      if (first) void this.reporter?.flush({ contentLength: swarm.scenario.sizeBytes, pieceLength });
      next();
    });
  }

  private checkComplete(): void {
    if ((this.state !== "p2p" && this.state !== "back_to_source") || this.total === null || this.store.held.size < this.total) return;
    this.state = "succeeded";
    this.stop();
    void this.reporter?.result({ state: "succeeded", contentLength: this.swarm.scenario.sizeBytes });
    this.swarm.onNodeEnd(this.node, true);
  }

  private fail(): void {
    if (process.env.SIM_DEBUG) console.error(this.node.hostId, "fail", this.state, new Error().stack);
    if (this.state === "succeeded" || this.state === "failed") return;
    this.state = "failed";
    this.stop();
    if (!this.node.isSeed) this.swarm.onNodeEnd(this.node, false);
  }

  /** The node died: everything stops, nothing more is reported. */
  halt(): void {
    if (this.state !== "succeeded" && this.state !== "failed") {
      this.state = "failed";
      if (!this.node.isSeed) this.swarm.onNodeEnd(this.node, false);
    }
    this.stop();
  }

  /** Out of p2p: no more fetches, retries, feeds or polls (session.ts stop()). */
  private stop(): void {
    clearTimeout(this.retryTimer);
    for (const cancel of [...this.fetches.values()]) cancel();
    for (const res of this.feeds.values()) res.destroy();
    this.feeds.clear();
    this.poller?.wake();
  }
}

