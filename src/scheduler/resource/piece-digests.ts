/**
 * A task's canonical piece digests, in the order they became known, each stamped
 * with the task version that published it: a peer that saw version v is sent only
 * the digests stamped after v, without a list of every digest being rebuilt.
 */
import type { PieceInfo } from "../../api/scheduler.js";

export class PieceDigests {
  private readonly byNumber = new Map<number, PieceInfo>();
  /** When the origin fetcher reported each piece (not set for pieces adopted from a completed peer). */
  private readonly fromOriginAt = new Map<number, number>();
  private list: PieceInfo[] = [];
  private stamps: number[] = [];

  get size(): number {
    return this.list.length;
  }

  get(n: number): PieceInfo | undefined {
    return this.byNumber.get(n);
  }

  /** `stamp` must not be below any earlier one. */
  add(piece: PieceInfo, stamp: number, fromOriginAt?: number): void {
    if (this.byNumber.has(piece.number)) return;
    this.byNumber.set(piece.number, piece);
    if (fromOriginAt !== undefined) this.fromOriginAt.set(piece.number, fromOriginAt);
    this.list.push(piece);
    this.stamps.push(stamp);
  }

  /** When the origin fetcher first reported piece `n`, if it did. */
  reportedByOriginFetcherAt(n: number): number | undefined {
    return this.fromOriginAt.get(n);
  }

  /** Every digest (a copy). */
  all(): PieceInfo[] {
    return this.list.slice();
  }

  /** Digests stamped after `version`. */
  since(version: number): PieceInfo[] {
    let lo = 0;
    let hi = this.stamps.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.stamps[mid]! > version) hi = mid;
      else lo = mid + 1;
    }
    return this.list.slice(lo);
  }

  clear(): void {
    this.byNumber.clear();
    this.fromOriginAt.clear();
    this.list = [];
    this.stamps = [];
  }
}
