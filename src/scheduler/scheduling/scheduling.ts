/** Schedule answers: what a peer should do now, with which parents, and the piece digests it has not seen. */
import type { PieceInfo, ScheduleReply } from "../../api/scheduler.js";
import type { Peer } from "../resource/peer.js";
import type { TaskManager } from "../resource/tasks.js";
import type { RoleAssigner } from "./roles.js";
import { selectParents } from "./parents.js";

export interface SchedulingOptions {
  parentsPerSchedule: number;
  /** Long-poll window when the peer does not ask for one. */
  scheduleWaitMs: number;
  maxScheduleWaitMs: number;
  filterParentLimit: number;
}

export class Scheduling {
  constructor(
    private readonly tasks: TaskManager,
    private readonly roles: RoleAssigner,
    private readonly opts: SchedulingOptions,
  ) {}

  /** Long poll: answers once the task's version is past `since` (or the wait ends), with the digests stamped after `since`. */
  async schedule(taskId: string, peerId: string, since: number, count: number | undefined, waitMs: number | undefined): Promise<ScheduleReply> {
    let peer = this.tasks.peer(taskId, peerId);
    const parents = count ?? this.opts.parentsPerSchedule;
    await peer.task.waitForChange(since, Math.min(waitMs ?? this.opts.scheduleWaitMs, this.opts.maxScheduleWaitMs), parents > 0);
    peer = this.tasks.peer(taskId, peerId); // it may have been dropped while we waited
    this.roles.rescueOrphan(peer);
    return this.reply(peer, parents, peer.task.digests.since(since));
  }

  /** The answer for `peer` now, carrying `pieces` (every digest at registration, the new ones on a poll). */
  reply(peer: Peer, count: number, pieces: PieceInfo[]): ScheduleReply {
    const task = peer.task;
    const base = { version: task.version, task: task.info(), pieces };
    if (task.state === "failed") return { ...base, action: "failed", parents: [] };
    if (peer.state === "back_to_source") return { ...base, action: "back_to_source", parents: [] };
    // A poll for digests only (count 0) gets no parents: which pieces a parent holds the
    // child hears from the parent itself (its have feed), so no answer carries bitmaps.
    if (count === 0) return { ...base, action: "p2p", parents: [] };
    // A stuck peer may ask for more parents than are sampled (up to ScheduleQuery's 64).
    const limit = Math.max(this.opts.filterParentLimit, count);
    const parents = selectParents(peer, { count, limit, now: Date.now() }).map((p) => ({
      peerId: p.id,
      hostId: p.host.id,
      ip: p.host.info.ip,
      uploadPort: p.host.info.uploadPort,
      isSeed: p.host.isSeed,
    }));
    return { ...base, action: parents.length ? "p2p" : "wait", parents };
  }
}
