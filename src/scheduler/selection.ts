import { BitSet } from "../common/bitset.js";
import type { Peer } from "./resources.js";

export interface SpreadOptions {
  firstReceiversPerPiece: number;
  spreadWaitMs: number;
}

/**
 * How good a parent `candidate` is for `child`, higher is better. Each term is
 * in [0, 1] and weighted: pieces held matter most, then free upload slots,
 * then recent failures (a penalty), being a seed, and sharing IDC / location.
 */
export function parentScore(candidate: Peer, child: Peer, now: number): number {
  const task = candidate.task;
  const total = task.totalPieces ?? Math.max(1, task.digests.size);
  // Pieces the child still lacks: a parent with only what the child has is no help.
  const pieces = total > 0 ? candidate.pieces.countNotIn(child.pieces) / total : 1;
  const { uploadSlots, freeUploadSlots, isSeed, idc, location } = candidate.host.info;
  const slots = uploadSlots > 0 ? freeUploadSlots / uploadSlots : 0;
  const failures = Math.min(1, candidate.recentFailures(now) / 3);
  const sameIdc = idc !== "" && idc === child.host.info.idc ? 1 : 0;
  const sameLocation = location !== "" && location === child.host.info.location ? 1 : 0;
  return 0.4 * pieces + 0.2 * slots - 0.3 * failures + 0.1 * (isSeed ? 1 : 0) + 0.1 * sameIdc + 0.05 * sameLocation;
}

export function isEligibleParent(candidate: Peer, child: Peer): boolean {
  if (candidate === child || candidate.untrusted || !candidate.host.alive) return false;
  if (candidate.host === child.host) return false;
  if (child.blockedParents.has(candidate.id)) return false;
  return candidate.state === "running" || candidate.state === "back_to_source" || candidate.state === "succeeded";
}

export function selectParents(child: Peer, count: number, now = Date.now()): Peer[] {
  const candidates: { peer: Peer; score: number }[] = [];
  for (const p of child.task.peers.values()) {
    if (isEligibleParent(p, child)) candidates.push({ peer: p, score: parentScore(p, child, now) });
  }
  candidates.sort((a, b) => b.score - a.score);
  return candidates.slice(0, count).map((c) => c.peer);
}

/** Whether a parent fetches from the origin (or is a seed): the peer every child would otherwise load. */
function isSpreader(p: Peer): boolean {
  return p.state === "back_to_source" || p.host.info.isSeed;
}

/**
 * The pieces `parent` is offered to `child` with. An origin fetcher or seed offers
 * a new piece only to a few first receivers (children in the piece's group, by a
 * stable order) until `spreadWaitMs` has passed; everyone else gets it from those
 * receivers. Children are grouped so that each piece has about
 * `firstReceiversPerPiece` of them, and consecutive pieces go to different groups.
 */
export function offeredPieces(parent: Peer, child: Peer, now: number, opts: SpreadOptions): BitSet {
  if (!isSpreader(parent) || child.host.info.isSeed) return parent.pieces;
  const task = parent.task;
  const children = [...task.peers.values()].filter((p) => !isSpreader(p) && (p.state === "running" || p.state === "pending")).map((p) => p.id).sort();
  const index = children.indexOf(child.id);
  const groups = Math.ceil(children.length / Math.max(1, opts.firstReceiversPerPiece));
  if (index < 0 || groups <= 1) return parent.pieces;
  const offered = new BitSet();
  for (const n of parent.pieces) {
    const seen = task.pieceSeenAt.get(n);
    if (seen === undefined || now - seen >= opts.spreadWaitMs || n % groups === index % groups) offered.add(n);
  }
  return offered;
}
