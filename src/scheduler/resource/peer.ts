/** One download of one task on one host, as the scheduler sees it. */
import { StateMachine } from "../../common/fsm.js";
import { BitSet } from "../../common/bitset.js";
import { SCHEDULER } from "../../common/defaults.js";
import type { TaskError } from "../../api/common.js";
import type { PeerState } from "../../api/scheduler.js";
import type { Host } from "./host.js";
import type { Task } from "./task.js";

const PEER_TRANSITIONS: Record<PeerState, PeerState[]> = {
  pending: ["running", "back_to_source", "failed", "left"],
  running: ["back_to_source", "succeeded", "failed", "left"],
  back_to_source: ["succeeded", "failed", "left"],
  succeeded: ["left"],
  failed: ["left"],
  left: [],
};

/** States in which a peer serves what it holds to others. */
const SERVING: ReadonlySet<PeerState> = new Set(["running", "back_to_source", "succeeded"]);

export class Peer {
  private readonly fsm: StateMachine<PeerState>;
  /** Pieces held; grows only through addPiece, so the task's indexes stay true. */
  readonly pieces = new BitSet();
  /** Parents this peer reported as unreachable or slow: not offered to it again. */
  readonly blockedParents = new Set<string>();
  /** When other peers reported failures fetching from this one, oldest first. */
  private readonly failuresAsParent: number[] = [];
  private distrusted = false;
  error: TaskError | null = null;
  readonly createdAt = Date.now();
  /** Last piece added or state change: when the peer last used the task. */
  updatedAt = this.createdAt;

  constructor(
    readonly id: string,
    readonly host: Host,
    readonly task: Task,
  ) {
    this.fsm = new StateMachine<PeerState>("pending", PEER_TRANSITIONS, `peer ${id}`);
  }

  get state(): PeerState {
    return this.fsm.state;
  }

  /** Served (or reported) a piece that failed its digest: offered to nobody again. */
  get untrusted(): boolean {
    return this.distrusted;
  }

  /** May serve others: in a serving state and trusted. */
  get servesOthers(): boolean {
    return !this.distrusted && SERVING.has(this.state);
  }

  /** Fetches from the origin, or is a seed: the peer every child would otherwise load (see scheduling/spread.ts). */
  get isSpreader(): boolean {
    return this.state === "back_to_source" || this.host.isSeed;
  }

  to(next: PeerState): void {
    if (this.state === next) return;
    this.fsm.to(next);
    this.updatedAt = Date.now();
    this.task.reindex(this);
  }

  distrust(): void {
    if (this.distrusted) return;
    this.distrusted = true;
    this.task.reindex(this);
  }

  /** Records that this peer holds piece `n` (its digest already checked against the task's). */
  addPiece(n: number): void {
    if (this.pieces.has(n)) return;
    this.pieces.add(n);
    this.updatedAt = Date.now();
    this.task.pieceAdded(this, n);
  }

  failedAsParent(now = Date.now()): void {
    this.failuresAsParent.push(now);
  }

  /** Failures as a parent within the last `windowMs`. */
  recentFailures(now: number, windowMs: number = SCHEDULER.parentFailureWindowMs): number {
    while (this.failuresAsParent.length && this.failuresAsParent[0]! < now - windowMs) this.failuresAsParent.shift();
    return this.failuresAsParent.length;
  }
}
