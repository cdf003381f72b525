/**
 * Preheat: the scheduler asks hosts (seed peers, or every peer, by scope) to fetch
 * a task ahead of demand, at most `concurrentPeerCount` at once (Dragonfly's
 * concurrent_peer_count); the next queued host is asked as one finishes or fails.
 */
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { PreheatReply, PreheatRequest } from "../api/scheduler.js";
import type { Host } from "./resource/host.js";
import type { Resource } from "./resource/resource.js";
import type { Task } from "./resource/task.js";

/** Hosts not asked yet, how many may fetch at once, and who is fetching. */
interface PreheatQueue {
  hosts: Host[];
  limit: number;
  running: Set<string>;
}

export class Preheat {
  private readonly queues = new Map<Task, PreheatQueue>();

  constructor(
    private readonly resource: Resource,
    private readonly log: Logger,
  ) {}

  async preheat(req: PreheatRequest): Promise<PreheatReply> {
    const task = this.resource.tasks.forDownload(req.download);
    const hosts = this.targets(task, req);
    if (hosts.length === 0) throw new KilnError("UNAVAILABLE", `no live ${req.scope === "all_peers" ? "peers" : "seed peers"} to preheat on`);
    const limit = req.concurrentPeerCount ?? hosts.length;
    const now = hosts.slice(0, limit);
    const later = hosts.slice(limit);
    // The rest wait their turn: each is asked as one of the running hosts finishes (see advance()).
    const queue = later.length ? { hosts: later, limit, running: new Set(now.map((h) => h.id)) } : undefined;
    if (queue) this.queues.set(task, queue);
    else this.queues.delete(task);
    const control = this.resource.peerControl;
    const results = await Promise.all(
      now.map(async (h) => {
        const error = await control.trigger(h, task);
        if (error) this.queues.get(task)?.running.delete(h.id);
        return { hostId: h.id, hostname: h.info.hostname, ip: h.info.ip, accepted: !error, ...(error ? { error } : {}) };
      }),
    );
    this.advance(task);
    const queued = later.map((h) => ({ hostId: h.id, hostname: h.info.hostname, ip: h.info.ip, accepted: true }));
    return { taskId: task.id, hosts: [...results, ...queued] };
  }

  /** Asks queued hosts while fewer than the limit are fetching. */
  advance(task: Task): void {
    const q = this.queues.get(task);
    if (!q) return;
    // A running host is done once its peer on this task has finished or failed, or the host is gone.
    for (const hostId of [...q.running]) {
      const host = this.resource.hosts.get(hostId);
      const peer = host ? first(task.peers.onHost(host)) : undefined;
      if (!host?.alive || (peer && (peer.state === "succeeded" || peer.state === "failed" || peer.state === "left"))) q.running.delete(hostId);
    }
    while (q.running.size < q.limit && q.hosts.length) {
      const next = q.hosts.shift()!;
      if (!next.alive) continue;
      q.running.add(next.id);
      void this.resource.peerControl.trigger(next, task).then((err) => {
        if (!err) return;
        this.log.warn({ task: task.id, host: next.id, err }, "queued preheat trigger failed");
        q.running.delete(next.id);
        this.advance(task);
      });
    }
    if (!q.hosts.length) this.queues.delete(task);
  }

  advanceAll(): void {
    for (const task of [...this.queues.keys()]) this.advance(task);
  }

  /** The task was forgotten: so is its queue. */
  forget(task: Task): void {
    this.queues.delete(task);
  }

  private targets(task: Task, req: PreheatRequest): Host[] {
    const pool = req.scope === "all_peers" ? this.resource.hosts.values() : this.resource.hosts.seedHosts();
    let hosts = [...pool].filter((h) => h.alive);
    if (req.ips?.length) hosts = hosts.filter((h) => req.ips!.includes(h.info.ip));
    if (req.hostIds) {
      const wanted = new Set(req.hostIds);
      hosts = hosts.filter((h) => wanted.has(h.id));
    }
    if (req.scope === "single_seed_peer") {
      const best = hosts.length ? this.resource.peerControl.pick(task, hosts[0]!) : undefined;
      return best && hosts.includes(best) ? [best] : hosts.slice(0, 1);
    }
    if (req.count !== undefined) hosts = hosts.slice(0, req.count);
    else if (req.percentage !== undefined) hosts = hosts.slice(0, Math.max(1, Math.round((hosts.length * req.percentage) / 100)));
    return hosts;
  }
}

function first<T>(items: Iterable<T> | undefined): T | undefined {
  if (items) for (const x of items) return x;
  return undefined;
}
