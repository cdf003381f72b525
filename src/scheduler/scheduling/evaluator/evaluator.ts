/**
 * How good a parent a candidate is for a child, higher is better. Each term is in
 * [0, 1] and weighted: pieces the child lacks matter most, then free upload slots,
 * then recent failures (a penalty), being a seed, and sharing IDC / location.
 */
import type { Peer } from "../../resource/peer.js";

export const PARENT_WEIGHTS = {
  /** Share of the task's pieces the candidate holds and the child lacks. */
  usefulPieces: 0.4,
  /** Share of the candidate host's upload slots that are free. */
  freeUploadSlots: 0.2,
  /** Penalty: recent failures serving others, full at FAILURES_FOR_FULL_PENALTY. */
  recentFailures: 0.3,
  isSeed: 0.1,
  sameIdc: 0.1,
  sameLocation: 0.05,
} as const;

/** Recent failures as a parent at which the failure penalty is full. */
export const FAILURES_FOR_FULL_PENALTY = 3;

export function parentScore(candidate: Peer, child: Peer, now: number): number {
  const task = candidate.task;
  const total = task.totalPieces ?? Math.max(1, task.digests.size);
  // A parent with only what the child has is no help.
  const pieces = total > 0 ? candidate.pieces.countNotIn(child.pieces) / total : 1;
  const host = candidate.host;
  const failures = Math.min(1, candidate.recentFailures(now) / FAILURES_FOR_FULL_PENALTY);
  const { idc, location } = child.host.info;
  const sameIdc = idc !== "" && idc === host.info.idc ? 1 : 0;
  const sameLocation = location !== "" && location === host.info.location ? 1 : 0;
  const w = PARENT_WEIGHTS;
  return (
    w.usefulPieces * pieces +
    w.freeUploadSlots * host.freeSlotShare -
    w.recentFailures * failures +
    w.isSeed * (host.isSeed ? 1 : 0) +
    w.sameIdc * sameIdc +
    w.sameLocation * sameLocation
  );
}
