/**
 * Piece spreading. An origin fetcher or seed offers a new piece only to a few first
 * receivers (children in the piece's group) until `spreadWaitMs` has passed;
 * everyone else gets it from those receivers. Children are grouped by their place
 * in the task's child index so that each piece has about `firstReceiversPerPiece`
 * of them, and consecutive pieces go to different groups.
 */
import { BitSet } from "../../common/bitset.js";
import type { Peer } from "../resource/peer.js";

export interface SpreadOptions {
  firstReceiversPerPiece: number;
  spreadWaitMs: number;
}

/** The pieces `parent` is offered to `child` with. */
export function offeredPieces(parent: Peer, child: Peer, now: number, opts: SpreadOptions): BitSet {
  if (!parent.isSpreader || child.host.isSeed) return parent.pieces;
  const task = parent.task;
  const children = task.peers.children;
  const index = children.indexOf(child);
  const groups = Math.ceil(children.size / Math.max(1, opts.firstReceiversPerPiece));
  if (index === undefined || groups <= 1) return parent.pieces;
  const offered = new BitSet();
  for (const n of parent.pieces) {
    const seen = task.digests.reportedByOriginFetcherAt(n);
    if (seen === undefined || now - seen >= opts.spreadWaitMs || n % groups === index % groups) offered.add(n);
  }
  return offered;
}
