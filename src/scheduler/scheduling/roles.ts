/**
 * Role assignment: which peer fetches a task from the origin, when a seed peer is
 * triggered to do it instead, which peers are children of the swarm, and when a
 * child left without an origin fetcher is rescued into being one.
 */
import type { Logger } from "../../common/logger.js";
import type { Peer } from "../resource/peer.js";
import type { PeerControl } from "../resource/peer-control.js";
import type { Task } from "../resource/task.js";

export interface RoleOptions {
  /** How long to wait for a triggered seed peer to register before others may go to the origin. */
  seedTriggerWaitMs: number;
}

export class RoleAssigner {
  constructor(
    private readonly peerControl: PeerControl,
    private readonly log: Logger,
    private readonly opts: RoleOptions,
  ) {}

  /** Picks the origin fetcher for a task that has none (triggering a seed peer when one is around), or makes `peer` a child. */
  assign(task: Task, peer: Peer): void {
    const now = Date.now();
    const waitsForOthers =
      task.state === "succeeded" ||
      task.source ||
      task.fullyAvailable() ||
      (task.seedTrigger && task.seedTrigger.until > now && task.seedTrigger.hostId !== peer.host.id);
    if (waitsForOthers) {
      peer.to("running");
      return;
    }
    // Seeds, and anyone when no seed is around, go to the origin themselves.
    const seed = peer.host.isSeed ? undefined : this.peerControl.pick(task, peer.host);
    if (!seed) {
      this.makeSource(task, peer);
      return;
    }
    task.seedTriggered(seed.id, now + this.opts.seedTriggerWaitMs);
    peer.to("running");
    void this.peerControl.trigger(seed, task).then((err) => {
      if (!err) return;
      this.log.warn({ task: task.id, seed: seed.id, err }, "seed peer trigger failed; peers will go to the origin");
      task.seedGone();
    });
  }

  /** No origin fetcher, no seed on its way, and the swarm cannot serve everything: this peer goes. */
  rescueOrphan(peer: Peer): void {
    const task = peer.task;
    if (peer.state !== "running" || task.state === "succeeded" || task.state === "failed") return;
    if (task.source || task.fullyAvailable()) return;
    if (task.seedTrigger && task.seedTrigger.until > Date.now()) return;
    this.makeSource(task, peer);
    task.touch();
  }

  private makeSource(task: Task, peer: Peer): void {
    peer.to("back_to_source");
    task.originFetchStarted();
    this.log.info({ task: task.id, peer: peer.id }, "peer goes back to source");
  }
}
