/**
 * Parent selection: sample at most `limit` candidates from the task's parent pools
 * (origin fetchers and seeds first, then peers holding pieces, then peers with none
 * yet, each pool in random order), keep those that may serve the child, rank them
 * with the evaluator. The work is bounded by `limit`, not by the swarm's size.
 */
import type { Peer } from "../resource/peer.js";
import { parentScore } from "./evaluator/evaluator.js";

export interface ParentSelection {
  /** Parents wanted. */
  count: number;
  /** Candidates considered at most (SCHEDULER.filterParentLimit). */
  limit: number;
  now: number;
  random?: () => number;
}

/**
 * Whether a peer of the task's parent pools may serve `child`. The pools hold only
 * trusted peers of live hosts in a serving state (resource/task-peers.ts), so what
 * is left to check is the child itself, its own host and the parents it blocked.
 */
function isEligibleParent(candidate: Peer, child: Peer): boolean {
  return candidate !== child && candidate.host !== child.host && !child.blockedParents.has(candidate.id);
}

/** Up to `limit` distinct peers that may serve `child`, drawing at most `DRAWS_PER_CANDIDATE × limit` peers. */
export function candidateParents(child: Peer, limit: number, random: () => number = Math.random): Peer[] {
  const { spreaders, holders, empties } = child.task.peers;
  const out: Peer[] = [];
  let draws = DRAWS_PER_CANDIDATE * limit;
  for (const pool of [spreaders, holders, empties]) {
    for (const p of pool.randomOrder(random)) {
      if (out.length >= limit || draws-- <= 0) return out;
      if (isEligibleParent(p, child)) out.push(p);
    }
  }
  return out;
}

/** Ineligible peers (the child's own host, blocked) may be drawn too; this bounds the draws. */
const DRAWS_PER_CANDIDATE = 2;

/** The `count` best-scored candidates, best first (ties keep the order candidates were drawn in). */
export function selectParents(child: Peer, s: ParentSelection): Peer[] {
  const best: { peer: Peer; score: number }[] = [];
  for (const peer of candidateParents(child, s.limit, s.random)) {
    const score = parentScore(peer, child, s.now);
    if (best.length === s.count && score <= best[best.length - 1]!.score) continue;
    let i = best.length;
    while (i > 0 && best[i - 1]!.score < score) i--;
    best.splice(i, 0, { peer, score });
    if (best.length > s.count) best.pop();
  }
  return best.map((c) => c.peer);
}
