/**
 * Which piece to fetch from which parent. Knows the parents the scheduler handed
 * out (with the pieces each holds), the canonical digests, what is in flight and
 * which parents failed; decides synchronously, does no I/O.
 */
import { BitSet } from "../../common/bitset.js";
import type { ParentInfo, PieceInfo } from "../../api/scheduler.js";
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
}

export class PieceDispatcher {
  private readonly parents = new Map<string, ParentState>();
  private readonly blocked = new Set<string>();
  private readonly digests = new Map<number, PieceInfo>();
  private readonly inFlight = new Map<number, ParentState>();
  /** Highest piece number with a known digest. */
  private lastKnown = -1;
  /** Every piece below this one is stored. */
  private firstMissing = 0;

  constructor(
    private readonly opts: DispatchOptions,
    /** Whether the piece is already verified and stored. */
    private readonly has: (n: number) => boolean,
  ) {}

  /** Canonical digests, from whoever fetched the pieces from the origin. */
  addDigests(pieces: PieceInfo[]): void {
    for (const p of pieces) {
      this.digests.set(p.number, p);
      this.lastKnown = Math.max(this.lastKnown, p.number);
    }
  }

  digest(n: number): PieceInfo | undefined {
    return this.digests.get(n);
  }

  /** New or refreshed parents; a parent's bitmap is replaced by the scheduler's newer one. */
  updateParents(parents: ParentInfo[]): void {
    for (const info of parents) {
      const pieces = BitSet.fromBase64(info.pieces);
      const existing = this.parents.get(info.peerId);
      if (existing) Object.assign(existing, { info, pieces });
      else this.parents.set(info.peerId, { info, pieces, inFlight: 0, assigned: 0, busyUntil: 0 });
    }
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  isBlocked(parentId: string): boolean {
    return this.blocked.has(parentId);
  }

  /**
   * Picks pieces to start now, lowest first (the reader streams in order), within the
   * limits, and marks them in flight. Each goes to the parent holding it with the fewest
   * pieces in flight from us; on a tie a peer before a seed (every child loads the seed),
   * then the parent used least so far, so the load spreads over every parent that can
   * serve. Busy (backing off) and blocked parents are skipped. `starved` when a wanted
   * piece had no parent able to serve it.
   */
  assign(now: number): { assignments: Assignment[]; starved: boolean } {
    const assignments: Assignment[] = [];
    let starved = false;
    while (this.has(this.firstMissing)) this.firstMissing++;
    for (let n = this.firstMissing; n <= this.lastKnown && this.inFlight.size < this.opts.concurrentPieces; n++) {
      const expected = this.digests.get(n);
      if (!expected || this.has(n) || this.inFlight.has(n)) continue;
      let best: ParentState | undefined;
      for (const p of this.parents.values()) {
        if (p.inFlight >= this.opts.piecesPerParent || p.busyUntil > now || !p.pieces.has(n) || this.blocked.has(p.info.peerId)) continue;
        if (!best || better(p, best)) best = p;
      }
      if (!best) {
        starved = true;
        continue;
      }
      best.inFlight++;
      best.assigned++;
      this.inFlight.set(n, best);
      assignments.push({ piece: n, parent: best.info, expected });
    }
    return { assignments, starved };
  }

  /** A busy parent is left alone for a while; any other failure blocks it for this download. */
  failed(a: Assignment, kind: PieceFailureKind, now: number): void {
    const parent = this.untrack(a);
    if (!parent) return;
    if (kind === "busy") parent.busyUntil = now + this.opts.busyBackoffMs;
    else this.blocked.add(parent.info.peerId);
  }

  /** Frees the assignment's slot without judging the parent (the piece arrived, or the fetch was cancelled). */
  release(a: Assignment): void {
    this.untrack(a);
  }

  /** When the earliest parent backing off after a "busy" answer may be asked again, if any is. */
  nextRetryAt(now: number): number | undefined {
    let at: number | undefined;
    for (const p of this.parents.values()) {
      if (p.busyUntil > now && !this.blocked.has(p.info.peerId)) at = Math.min(at ?? Infinity, p.busyUntil);
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
