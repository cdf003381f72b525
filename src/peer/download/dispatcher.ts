/**
 * Which piece to fetch from which parent. Knows the parents (with the pieces each
 * holds, as their have feeds tell), the canonical digests, what is in flight and
 * which parents failed; decides synchronously, does no I/O.
 */
import { BitSet } from "../../common/bitset.js";
import { MAX_PIECES, type ParentInfo, type PieceInfo } from "../../api/scheduler.js";
import type { PieceFailureKind } from "./piece-fetcher.js";

export interface DispatchOptions {
  /** Pieces in flight at once for this download. */
  concurrentPieces: number;
  /** Pieces in flight at once from one parent. */
  piecesPerParent: number;
  /** How long a parent that answered "busy" is left alone. */
  busyBackoffMs: number;
}

export const BUSY_BACKOFF_MS = 200;

/** One piece to fetch from one parent, verified against `expected`. */
export interface Assignment {
  piece: number;
  parent: ParentInfo;
  expected: PieceInfo;
}

interface ParentState {
  info: ParentInfo;
  pieces: BitSet;
  inFlight: number;
  /** Pieces ever assigned to it: among equally loaded parents, the one used least goes first. */
  assigned: number;
  busyUntil: number;
  /** Timeouts and broken connections in a row: each doubles the pause before it is asked again. */
  stalls: number;
  /** "Busy" answers since it last served a piece: each doubles the pause, up to MAX_BUSY_DOUBLINGS. */
  busyStreak: number;
}

/** The longest pause after a parent stalled or dropped a connection. */
const MAX_STALL_BACKOFF_MS = 30_000;
/** The first such pause. */
const STALL_BACKOFF_MS = 1_000;
/**
 * A parent busy again and again (its uplink is full: on slow links for seconds) is asked
 * after 1, 2, 4, 8, then 16 × the busy back-off: each "busy" costs both sides a request
 * that moves no byte, and at 40 Mbit they were a third of a peer's CPU.
 */
const MAX_BUSY_DOUBLINGS = 4;

export class PieceDispatcher {
  private readonly parents = new Map<string, ParentState>();
  private readonly blocked = new Set<string>();
  private readonly digests = new Map<number, PieceInfo>();
  private readonly inFlight = new Map<number, ParentState>();
  /** Parents (not blocked) holding each piece. */
  private readonly holders: number[] = [];
  /** Every piece below this one is stored. */
  private firstMissing = 0;

  constructor(
    private readonly opts: DispatchOptions,
    /** Whether the piece is already verified and stored. */
    private readonly has: (n: number) => boolean,
    private readonly random: () => number = Math.random,
  ) {}

  /** Canonical digests, from whoever fetched the pieces from the origin. */
  addDigests(pieces: PieceInfo[]): void {
    for (const p of pieces) this.digests.set(p.number, p);
  }

  digest(n: number): PieceInfo | undefined {
    return this.digests.get(n);
  }

  /** Parents not known yet (holding nothing until their feeds tell); returns those added. */
  addParents(parents: ParentInfo[]): ParentInfo[] {
    const added: ParentInfo[] = [];
    for (const info of parents) {
      if (this.parents.has(info.peerId) || this.blocked.has(info.peerId)) continue;
      this.parents.set(info.peerId, { info, pieces: new BitSet(), inFlight: 0, assigned: 0, busyUntil: 0, stalls: 0, busyStreak: 0 });
      added.push(info);
    }
    return added;
  }

  /** What a parent holds, as its feed opened with. */
  parentHolds(parentId: string, pieces: BitSet): void {
    for (const n of pieces) this.parentHas(parentId, n);
  }

  /** A parent has verified piece `n`. */
  parentHas(parentId: string, n: number): void {
    const p = this.parents.get(parentId);
    if (!p || n >= MAX_PIECES || p.pieces.has(n)) return;
    p.pieces.add(n);
    this.holders[n] = (this.holders[n] ?? 0) + 1;
  }

  /** The parent is gone (its feed ended): nothing more is asked of it; fetches in flight finish or fail on their own. */
  removeParent(parentId: string): void {
    const p = this.parents.get(parentId);
    if (!p) return;
    this.parents.delete(parentId);
    for (const n of p.pieces) this.holders[n]!--;
  }

  /**
   * Whether a parent holds a piece this download lacks whose digest is not known yet: the
   * origin fetcher told of it before its report reached the scheduler, so the next schedule
   * answer brings the digest, and the piece can be fetched only then.
   */
  awaitsDigest(): boolean {
    for (let n = this.firstMissing; n < this.holders.length; n++) {
      if (this.holders[n] && !this.digests.has(n) && !this.has(n)) return true;
    }
    return false;
  }

  /** Parents that may be asked for pieces. */
  get parentCount(): number {
    return this.parents.size;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  isBlocked(parentId: string): boolean {
    return this.blocked.has(parentId);
  }

  /**
   * Picks pieces to start now, within the limits, and marks them in flight: the first
   * missing piece first (a reader streams in order), then the rarest among the parents,
   * random among equals, so children of one parent fetch different pieces and serve each
   * other at once. Each goes to the parent holding it with the fewest pieces in flight
   * from us (a seed only for what no other parent holds, see bestParent); on a tie a peer
   * before a seed, then the parent used least so far. Busy (backing off) and blocked parents are skipped. At most
   * `budget` pieces start (the host's slots left, see piece-budget.ts); `overBudget` when that, not this download's
   * own limit, stopped it. `starved` when pieces are missing and no parent can serve any of them now.
   */
  assign(now: number, budget = Number.POSITIVE_INFINITY): { assignments: Assignment[]; starved: boolean; overBudget: boolean } {
    const assignments: Assignment[] = [];
    while (this.has(this.firstMissing)) this.firstMissing++;
    const own = () => this.inFlight.size < this.opts.concurrentPieces;
    const room = () => own() && assignments.length < budget;
    if (!room()) return { assignments, starved: false, overBudget: own() };
    for (const n of this.wanted()) {
      if (!room()) break;
      const best = this.bestParent(n, now);
      if (!best) continue;
      best.inFlight++;
      best.assigned++;
      this.inFlight.set(n, best);
      assignments.push({ piece: n, parent: best.info, expected: this.digests.get(n)! });
    }
    return { assignments, starved: assignments.length === 0 && this.inFlight.size === 0, overBudget: own() && assignments.length >= budget };
  }

  /**
   * Pieces with a digest that some parent holds, not stored or in flight: the first
   * missing one, then rarest first. Pieces go into buckets by holder count (no sort),
   * and each bucket is drawn from at random only as far as `assign` reads: this runs
   * on every have a parent sends, so its cost is one pass over the pieces.
   */
  private *wanted(): Generator<number> {
    const buckets: number[][] = [];
    let head = false;
    for (const n of this.digests.keys()) {
      const holders = this.holders[n];
      if (!holders || this.has(n) || this.inFlight.has(n)) continue;
      if (n === this.firstMissing) head = true;
      else if (buckets[holders]) buckets[holders].push(n);
      else buckets[holders] = [n];
    }
    if (head) yield this.firstMissing;
    for (const bucket of buckets) {
      if (!bucket) continue;
      for (let left = bucket.length; left > 0; left--) {
        const i = Math.floor(this.random() * left);
        const n = bucket[i]!;
        bucket[i] = bucket[left - 1]!;
        yield n;
      }
    }
  }

  /**
   * The parent to ask for piece `n`. A seed is asked only for a piece no other parent
   * holds, or when nothing else is in flight: every child would otherwise load it
   * (its uplink is for pieces nobody else has yet).
   */
  private bestParent(n: number, now: number): ParentState | undefined {
    let best: ParentState | undefined;
    let otherHolder = false;
    for (const p of this.parents.values()) {
      if (!p.pieces.has(n)) continue;
      if (!p.info.isSeed) otherHolder = true;
      if (p.inFlight >= this.opts.piecesPerParent || p.busyUntil > now) continue;
      if (!best || better(p, best)) best = p;
    }
    if (best?.info.isSeed && otherHolder && this.inFlight.size > 0) return undefined;
    return best;
  }

  /**
   * A busy parent is left alone for a while; one that stalled or dropped the connection
   * for longer each time in a row (it may be overloaded, and may be the only holder of a
   * piece: its have feed says whether it is still there); one that sent a wrong piece, or
   * answered with an error, is blocked for this download.
   */
  failed(a: Assignment, kind: PieceFailureKind, now: number): void {
    const parent = this.untrack(a);
    if (!parent) return;
    if (kind === "busy") {
      parent.busyUntil = now + this.opts.busyBackoffMs * 2 ** Math.min(parent.busyStreak, MAX_BUSY_DOUBLINGS);
      parent.busyStreak++;
      return;
    }
    if (kind === "timeout" || kind === "unreachable") {
      parent.stalls++;
      parent.busyUntil = now + Math.min(MAX_STALL_BACKOFF_MS, STALL_BACKOFF_MS * 2 ** (parent.stalls - 1));
      return;
    }
    this.blocked.add(parent.info.peerId);
    this.removeParent(parent.info.peerId);
  }

  /** Frees the assignment's slot without judging the parent (the piece arrived, or the fetch was cancelled). */
  release(a: Assignment): void {
    this.untrack(a);
  }

  /** The piece arrived: the parent's runs of stalls and of "busy" answers are over. */
  succeeded(a: Assignment): void {
    const parent = this.untrack(a);
    if (!parent) return;
    parent.stalls = 0;
    parent.busyStreak = 0;
  }

  /** When the earliest parent backing off after a "busy" answer may be asked again, if any is. */
  nextRetryAt(now: number): number | undefined {
    let at: number | undefined;
    for (const p of this.parents.values()) {
      if (p.busyUntil > now) at = Math.min(at ?? Infinity, p.busyUntil);
    }
    return at;
  }

  private untrack(a: Assignment): ParentState | undefined {
    const parent = this.inFlight.get(a.piece);
    if (!parent || parent.info.peerId !== a.parent.peerId) return undefined;
    this.inFlight.delete(a.piece);
    parent.inFlight--;
    return parent;
  }
}

function better(a: ParentState, b: ParentState): boolean {
  if (a.inFlight !== b.inFlight) return a.inFlight < b.inFlight;
  if (a.info.isSeed !== b.info.isSeed) return !a.info.isSeed;
  return a.assigned < b.assigned;
}
