/** One piece of content (a task ID), its layout and digests, and the peers downloading it. */
import { StateMachine } from "../../common/fsm.js";
import { KilnError } from "../../common/errors.js";
import { layoutConflict, pieceCount, type LayoutClaim } from "../../common/piece.js";
import type { DownloadSpec, OriginAccess, TaskError } from "../../api/common.js";
import type { PieceInfo, TaskInfo, TaskState } from "../../api/scheduler.js";
import { ChangeSignal } from "./change-signal.js";
import type { Host } from "./host.js";
import { Peer } from "./peer.js";
import { PieceDigests } from "./piece-digests.js";
import { TaskPeers } from "./task-peers.js";

const TASK_TRANSITIONS: Record<TaskState, TaskState[]> = {
  pending: ["running", "failed"],
  running: ["succeeded", "failed", "pending"],
  succeeded: ["pending"],
  failed: ["pending"],
};

export class Task {
  private readonly fsm = new StateMachine<TaskState>("pending", TASK_TRANSITIONS, "task");
  readonly peers = new TaskPeers();
  /** Canonical digests, from whoever fetched the pieces from the origin. */
  readonly digests = new PieceDigests();
  contentLength: number | null = null;
  pieceLength: number | null = null;
  error: TaskError | null = null;
  /** The origin's ETag or Last-Modified, as the first origin fetcher reported it. */
  validator: string | null = null;
  /** Who the origin serves the content to, as the first origin fetcher reported it. */
  access: OriginAccess | null = null;
  /** A seed peer was asked to fetch from the origin; until when we wait for it. */
  seedTrigger: { hostId: string; until: number } | null = null;
  lastActivity = Date.now();
  private readonly changes = new ChangeSignal();

  constructor(
    readonly id: string,
    /** Origin request, credentials included; memory only, never persisted or logged. */
    public spec: DownloadSpec,
  ) {}

  get state(): TaskState {
    return this.fsm.state;
  }

  // The task's lifecycle: every change of state goes through one of these named transitions.

  /** A download is under way (a seed triggered, a peer at the origin, a child resumed). */
  start(): void {
    if (this.state === "pending") this.fsm.to("running");
  }

  /** A seed peer was asked to fetch from the origin: the other peers wait for it until `until`. */
  seedTriggered(hostId: string, until: number): void {
    this.seedTrigger = { hostId, until };
    this.start();
  }

  /** The triggered seed failed or went away: a waiting peer may go to the origin now. */
  seedGone(): void {
    this.seedTrigger = null;
    this.touch();
  }

  /** A peer fetches from the origin; no seed is waited for any more. */
  originFetchStarted(): void {
    this.seedTrigger = null;
    this.start();
  }

  /** A child came back before the origin fetcher (the scheduler restarted): the others wait `waitMs` for it instead of starting the fetch again. */
  awaitResumedSource(waitMs: number): void {
    if (!this.source && !this.seedTrigger) this.seedTrigger = { hostId: "", until: Date.now() + waitMs };
    this.start();
  }

  /** The origin fetcher failed at the origin: the task fails with its error. */
  originFailed(error: TaskError): void {
    if (this.state !== "running") return;
    this.error = error;
    this.fsm.to("failed");
  }

  /** A peer holds every piece. */
  succeeded(): void {
    if (this.state === "failed") this.fsm.to("pending");
    this.start();
    if (this.state === "running") this.fsm.to("succeeded");
    this.error = null;
  }

  /**
   * A failed task starts over from the origin, as does a finished one whose copies are
   * all gone. A failed task's failed peers (the origin fetcher among them) are dropped
   * with the pieces they reported, so the new download neither waits on them as
   * parents nor skips the seed peer that failed before.
   */
  restart(): void {
    if (this.state === "failed") {
      for (const p of [...this.peers.values()]) if (p.state === "failed") this.leave(p);
      if (![...this.peers.values()].some((p) => p.pieces.size > 0)) this.forgetLayout();
      this.seedTrigger = null;
    }
    if (this.state !== "pending") this.fsm.to("pending");
    this.error = null;
  }

  /** Moves on every change; a schedule reply carries it and long polls wait for it to move. */
  get version(): number {
    return this.changes.version;
  }

  get totalPieces(): number | null {
    if (this.contentLength === null || this.pieceLength === null) return null;
    return pieceCount(this.contentLength, this.pieceLength);
  }

  /** Refuses (CONFLICT) a content or piece length that differs from the one the task already has. */
  checkLayout(claim: LayoutClaim): void {
    const conflict = layoutConflict(this, claim);
    if (conflict) throw new KilnError("CONFLICT", conflict);
  }

  /** Checks the claim, then records what it adds. */
  setLayout(claim: LayoutClaim): void {
    this.checkLayout(claim);
    if (claim.pieceLength != null) this.pieceLength = claim.pieceLength;
    if (claim.contentLength != null) this.contentLength = claim.contentLength;
  }

  /** Starting over: the layout and digests of a failed fetch are not the next one's. */
  forgetLayout(): void {
    this.digests.clear();
    this.contentLength = null;
    this.pieceLength = null;
    this.validator = null;
    this.access = null;
  }

  /** Records a canonical digest unless one is known; `fromOrigin` when the origin fetcher reports it (piece spreading starts then). */
  addDigest(piece: PieceInfo, fromOrigin: boolean): void {
    if (this.digests.get(piece.number)) return;
    this.digests.add(piece, this.changes.advance(), fromOrigin ? Date.now() : undefined);
  }

  join(peerId: string, host: Host): Peer {
    if (this.peers.has(peerId)) throw new KilnError("CONFLICT", `peer ${peerId} is already registered`);
    const peer = new Peer(peerId, host, this);
    this.peers.add(peer);
    host.peers.add(peer);
    return peer;
  }

  /** The peer is gone; a finished task whose copies went with it is pending again. */
  leave(peer: Peer): void {
    peer.to("left");
    this.peers.delete(peer);
    peer.host.peers.delete(peer);
    if (this.state === "succeeded" && !this.fullyAvailable()) this.fsm.to("pending");
    this.touch();
  }

  /** Called by a peer whose state, trust or host changed. */
  reindex(peer: Peer): void {
    this.peers.reindex(peer);
  }

  pieceAdded(peer: Peer, n: number): void {
    this.peers.pieceAdded(peer, n);
  }

  /** The peer currently fetching from the origin, if any. */
  get source(): Peer | undefined {
    return this.peers.firstFetcher();
  }

  hasPeerOn(host: Host): boolean {
    return this.peers.onHost(host) !== undefined;
  }

  /** Every piece is held by at least one trusted peer. */
  fullyAvailable(): boolean {
    const total = this.totalPieces;
    return total !== null && this.peers.allHeld(total);
  }

  /** A change every waiting peer must hear of (see ChangeSignal). */
  touch(): void {
    this.lastActivity = Date.now();
    this.changes.notify();
  }

  /** A peer others may fetch from appeared (it joined, or finished): only polls asking for parents are answered. */
  holderAppeared(): void {
    this.lastActivity = Date.now();
    this.changes.notifyHolders();
  }

  /** Resolves when the version moves past `since`, or (`wantsParents`) a holder appears, or after `ms`. */
  waitForChange(since: number, ms: number, wantsParents: boolean): Promise<void> {
    return this.changes.waitPast(since, ms, wantsParents);
  }

  info(): TaskInfo {
    return {
      id: this.id,
      state: this.state,
      contentLength: this.contentLength,
      pieceLength: this.pieceLength,
      totalPieces: this.totalPieces,
      error: this.error,
      validator: this.validator,
      access: this.access,
    };
  }
}
