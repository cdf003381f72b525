/** Scheduling decisions: who fetches from the origin, who gets which parents. */
import { KilnError } from "../common/errors.js";
import { SCHEDULER } from "../common/defaults.js";
import { taskIdFor } from "../common/task-id.js";
import { pieceCount } from "../common/piece.js";
import type { Logger } from "../common/logger.js";
import { PeerControlClient } from "../api/peer-client.js";
import type { TaskError } from "../api/common.js";
import type {
  FailureReport,
  HostAnnounce,
  PeerResult,
  PieceReport,
  PieceReportReply,
  PreheatReply,
  PreheatRequest,
  RegisterPeer,
  RegisterPeerReply,
  ScheduleReply,
  TaskStatus,
} from "../api/scheduler.js";
import { Host, Peer, Task } from "./resources.js";
import { offeredPieces, selectParents } from "./selection.js";

export interface SchedulerOptions {
  hostTimeoutMs: number;
  taskIdleTtlMs: number;
  parentsPerSchedule: number;
  scheduleWaitMs: number;
  /** How long to wait for a triggered seed peer to register before others may go to the origin. */
  seedTriggerWaitMs: number;
  /** Piece spreading (see SCHEDULER.firstReceiversPerPiece). */
  firstReceiversPerPiece: number;
  spreadWaitMs: number;
}

export const defaultSchedulerOptions: SchedulerOptions = {
  hostTimeoutMs: SCHEDULER.hostTimeoutMs,
  taskIdleTtlMs: SCHEDULER.taskIdleTtlMs,
  parentsPerSchedule: SCHEDULER.parentsPerSchedule,
  scheduleWaitMs: SCHEDULER.scheduleWaitMs,
  seedTriggerWaitMs: SCHEDULER.seedTriggerWaitMs,
  firstReceiversPerPiece: SCHEDULER.firstReceiversPerPiece,
  spreadWaitMs: SCHEDULER.spreadWaitMs,
};

export class SchedulerService {
  readonly hosts = new Map<string, Host>();
  readonly tasks = new Map<string, Task>();

  constructor(
    private readonly log: Logger,
    private readonly opts: SchedulerOptions = defaultSchedulerOptions,
  ) {}

  /** Returns true when the host was not known (its peer should re-register the tasks it holds). */
  announceHost(info: HostAnnounce): boolean {
    const existing = this.hosts.get(info.id);
    if (existing?.alive) {
      existing.info = info;
      existing.lastSeen = Date.now();
      return false;
    }
    this.hosts.set(info.id, new Host(info));
    this.log.info({ host: info.id, ip: info.ip, seed: info.isSeed }, "host joined");
    return true;
  }

  leaveHost(hostId: string, reason: string): void {
    const host = this.hosts.get(hostId);
    if (!host) throw new KilnError("NOT_FOUND", `unknown host ${hostId}`);
    this.dropHost(host, reason);
  }

  private dropHost(host: Host, reason: string): void {
    host.fsm.to("dead");
    this.hosts.delete(host.id);
    for (const task of this.tasks.values()) {
      for (const peer of task.peers.values()) if (peer.host === host) this.removePeer(peer);
      // Peers waiting for this seed go to the origin instead of waiting out the trigger.
      if (task.seedTrigger?.hostId === host.id) {
        task.seedTrigger = null;
        task.touch();
      }
    }
    this.log.info({ host: host.id, reason }, "host dropped; its children are rescheduled");
  }

  register(req: RegisterPeer): RegisterPeerReply {
    const host = this.liveHost(req.hostId);
    const taskId = taskIdFor({ ...req.download, filteredQueryParams: req.download.filteredQueryParams });
    let task = this.tasks.get(taskId);
    if (!task) {
      task = new Task(taskId, req.download);
      this.tasks.set(taskId, task);
    } else {
      task.spec = req.download;
    }
    if (task.peers.has(req.peerId)) throw new KilnError("CONFLICT", `peer ${req.peerId} is already registered`);
    if (req.completed) checkCompleted(task, req.completed);
    // A failed task, or a finished one whose copies are all gone, starts over.
    if (task.state === "failed") this.restartFailed(task);
    else if (task.state === "succeeded" && !task.fullyAvailable()) {
      task.fsm.to("pending");
      task.error = null;
    }
    const peer = new Peer(req.peerId, host, task);
    task.peers.set(peer.id, peer);
    if (req.completed) adoptCompleted(task, peer, req.completed);
    else this.assignRole(task, peer);
    task.touch();
    return { taskId, ...this.reply(task, peer, this.opts.parentsPerSchedule) };
  }

  /**
   * A failed task starts over from the origin: its failed peers (the origin fetcher
   * among them) are dropped with the pieces they reported, so the new download
   * neither waits on them as parents nor skips the seed peer that failed before.
   */
  private restartFailed(task: Task): void {
    for (const p of [...task.peers.values()]) if (p.state === "failed") this.removePeer(p);
    if (![...task.peers.values()].some((p) => p.pieces.size > 0)) {
      task.digests.clear();
      task.pieceSeenAt.clear();
      task.contentLength = null;
      task.pieceLength = null;
    }
    task.seedTrigger = null;
    task.error = null;
    task.fsm.to("pending");
  }

  /** Picks the origin fetcher for a task that has none, or makes `peer` a child. */
  private assignRole(task: Task, peer: Peer): void {
    const now = Date.now();
    if (task.state === "succeeded" || task.source || task.fullyAvailable()) return peer.fsm.to("running");
    if (task.seedTrigger && task.seedTrigger.until > now && task.seedTrigger.hostId !== peer.host.id) {
      return peer.fsm.to("running");
    }
    // Seeds, and anyone when no seed is around, go to the origin themselves.
    const seed = peer.host.info.isSeed ? undefined : this.pickSeedHost(task, peer.host);
    if (!seed) return this.makeSource(task, peer);
    task.seedTrigger = { hostId: seed.id, until: now + this.opts.seedTriggerWaitMs };
    if (task.state === "pending") task.fsm.to("running");
    peer.fsm.to("running");
    void this.trigger(seed, task).then((err) => {
      if (!err) return;
      this.log.warn({ task: task.id, seed: seed.id, err }, "seed peer trigger failed; peers will go to the origin");
      task.seedTrigger = null;
      task.touch();
    });
  }

  private makeSource(task: Task, peer: Peer): void {
    peer.fsm.to("back_to_source");
    task.seedTrigger = null;
    if (task.state === "pending") task.fsm.to("running");
    this.log.info({ task: task.id, peer: peer.id }, "peer goes back to source");
  }

  private pickSeedHost(task: Task, near: Host, exclude = new Set<string>()): Host | undefined {
    let best: Host | undefined;
    let bestScore = -Infinity;
    for (const h of this.hosts.values()) {
      if (!h.alive || !h.info.isSeed || exclude.has(h.id)) continue;
      if ([...task.peers.values()].some((p) => p.host === h)) continue;
      const free = h.info.uploadSlots > 0 ? h.info.freeUploadSlots / h.info.uploadSlots : 0;
      const score = free + (h.info.idc && h.info.idc === near.info.idc ? 0.5 : 0);
      if (score > bestScore) [best, bestScore] = [h, score];
    }
    return best;
  }

  private async trigger(host: Host, task: Task): Promise<string | undefined> {
    try {
      await new PeerControlClient(`http://${host.info.ip}:${host.info.uploadPort}`).prefetch({ taskId: task.id, download: task.spec }, host.info.controlToken);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  async schedule(taskId: string, peerId: string, since: number, count: number | undefined, waitMs: number | undefined): Promise<ScheduleReply> {
    let peer = this.peer(taskId, peerId);
    await peer.task.waitForChange(since, Math.min(waitMs ?? this.opts.scheduleWaitMs, 30_000));
    peer = this.peer(taskId, peerId); // it may have been dropped while we waited
    this.rescueOrphan(peer);
    return this.reply(peer.task, peer, count ?? this.opts.parentsPerSchedule);
  }

  /** No origin fetcher, no seed on its way, and the swarm cannot serve everything: this peer goes. */
  private rescueOrphan(peer: Peer): void {
    const task = peer.task;
    if (peer.state !== "running" || task.state === "succeeded" || task.state === "failed") return;
    if (task.source || task.fullyAvailable()) return;
    if (task.seedTrigger && task.seedTrigger.until > Date.now()) return;
    this.makeSource(task, peer);
    task.touch();
  }

  private reply(task: Task, peer: Peer, count: number): ScheduleReply {
    const pieces = [...task.digests.values()];
    const base = { version: task.version, task: task.info(), pieces };
    if (task.state === "failed") return { ...base, action: "failed", parents: [] };
    if (peer.state === "back_to_source") return { ...base, action: "back_to_source", parents: [] };
    const now = Date.now();
    const parents = selectParents(peer, count, now).map((p) => ({
      peerId: p.id,
      hostId: p.host.id,
      ip: p.host.info.ip,
      uploadPort: p.host.info.uploadPort,
      isSeed: p.host.info.isSeed,
      pieces: offeredPieces(p, peer, now, this.opts).toBase64(),
    }));
    return { ...base, action: parents.length ? "p2p" : "wait", parents };
  }

  reportPieces(taskId: string, peerId: string, report: PieceReport): PieceReportReply {
    const peer = this.peer(taskId, peerId);
    const task = peer.task;
    const isSource = peer.state === "back_to_source";
    if (report.contentLength !== undefined || report.pieceLength !== undefined) {
      if (!isSource) throw new KilnError("CONFLICT", "only the peer fetching from the origin may set content and piece length");
      if (report.pieceLength !== undefined) {
        if (task.pieceLength !== null && task.pieceLength !== report.pieceLength) {
          throw new KilnError("CONFLICT", `piece length ${report.pieceLength} conflicts with the task's ${task.pieceLength}`);
        }
        task.pieceLength = report.pieceLength;
      }
      if (report.contentLength !== undefined && report.contentLength !== null) {
        if (task.contentLength !== null && task.contentLength !== report.contentLength) {
          throw new KilnError("CONFLICT", `content length ${report.contentLength} conflicts with the task's ${task.contentLength}`);
        }
        task.contentLength = report.contentLength;
      }
    }
    const rejected: PieceReportReply["rejected"] = [];
    const total = task.totalPieces;
    for (const piece of report.pieces) {
      if (total !== null && piece.number >= total) {
        rejected.push({ number: piece.number, reason: `the task has ${total} pieces` });
        continue;
      }
      const canonical = task.digests.get(piece.number);
      if (canonical) {
        if (canonical.digest !== piece.digest || canonical.length !== piece.length) {
          peer.untrusted = true;
          rejected.push({ number: piece.number, reason: `digest ${piece.digest} differs from the task's ${canonical.digest}` });
          continue;
        }
      } else if (isSource) {
        task.digests.set(piece.number, piece);
        task.pieceSeenAt.set(piece.number, Date.now());
      } else {
        rejected.push({ number: piece.number, reason: "no digest known for this piece; only the origin fetcher may report it first" });
        continue;
      }
      peer.pieces.add(piece.number);
    }
    if (peer.untrusted) this.log.warn({ task: taskId, peer: peerId }, "peer reported a wrong piece digest; no longer offered as a parent");
    task.touch();
    return { rejected };
  }

  reportFailure(taskId: string, peerId: string, report: FailureReport): void {
    const child = this.peer(taskId, peerId);
    const parent = child.task.peers.get(report.parentId);
    child.blockedParents.add(report.parentId);
    if (parent) {
      parent.failuresAsParent.push(Date.now());
      if (report.kind === "digest_mismatch") {
        parent.untrusted = true;
        this.log.warn({ task: taskId, parent: parent.id, reporter: peerId, piece: report.pieceNumber }, "parent served a piece that failed its digest");
      }
    }
    child.task.touch();
  }

  reportResult(taskId: string, peerId: string, result: PeerResult): void {
    const peer = this.peer(taskId, peerId);
    const task = peer.task;
    if (result.state === "succeeded") {
      const total = task.totalPieces;
      if (task.contentLength !== null && task.contentLength !== result.contentLength) {
        throw new KilnError("CONFLICT", `content length ${result.contentLength} differs from the task's ${task.contentLength}`);
      }
      if (total !== null && peer.pieces.size < total) {
        throw new KilnError("CONFLICT", `peer holds ${peer.pieces.size} of ${total} pieces`);
      }
      peer.fsm.to("succeeded");
      if (task.state === "running") task.fsm.to("succeeded");
    } else {
      const wasSource = peer.state === "back_to_source";
      peer.error = result.error;
      peer.fsm.to("failed");
      if (wasSource && isOriginError(result.error) && task.state === "running") {
        task.error = result.error;
        task.fsm.to("failed");
        this.log.warn({ task: taskId, error: result.error.message }, "task failed at the origin");
      }
    }
    this.advancePreheat(task);
    task.touch();
  }

  leaveTask(taskId: string, peerId: string): void {
    this.removePeer(this.peer(taskId, peerId));
  }

  private removePeer(peer: Peer): void {
    const task = peer.task;
    peer.fsm.to("left");
    task.peers.delete(peer.id);
    if (task.state === "succeeded" && !task.fullyAvailable()) task.fsm.to("pending");
    task.touch();
  }

  async preheat(req: PreheatRequest): Promise<PreheatReply> {
    const taskId = taskIdFor(req.download);
    const task = this.tasks.get(taskId) ?? new Task(taskId, req.download);
    this.tasks.set(taskId, task);
    const hosts = this.preheatTargets(task, req);
    if (hosts.length === 0) throw new KilnError("UNAVAILABLE", `no live ${req.scope === "all_peers" ? "peers" : "seed peers"} to preheat on`);
    const limit = req.concurrentPeerCount ?? hosts.length;
    const now = hosts.slice(0, limit);
    const later = hosts.slice(limit);
    // The rest wait their turn: each is triggered as one of the running hosts finishes (see reportResult).
    task.preheatQueue = later.length ? { hosts: later, limit, running: new Set(now.map((h) => h.id)) } : null;
    const results = await Promise.all(
      now.map(async (h) => {
        const error = await this.trigger(h, task);
        if (error) task.preheatQueue?.running.delete(h.id);
        return { hostId: h.id, hostname: h.info.hostname, ip: h.info.ip, accepted: !error, ...(error ? { error } : {}) };
      }),
    );
    this.advancePreheat(task);
    const queued = later.map((h) => ({ hostId: h.id, hostname: h.info.hostname, ip: h.info.ip, accepted: true }));
    return { taskId, hosts: [...results, ...queued] };
  }

  /** Triggers queued preheat hosts while fewer than the limit are fetching. */
  private advancePreheat(task: Task): void {
    const q = task.preheatQueue;
    if (!q) return;
    // A running host is done once its peer on this task has finished or failed, or the host is gone.
    for (const hostId of [...q.running]) {
      const peer = [...task.peers.values()].find((p) => p.host.id === hostId);
      const gone = !this.hosts.get(hostId)?.alive;
      if (gone || (peer && (peer.state === "succeeded" || peer.state === "failed" || peer.state === "left"))) q.running.delete(hostId);
    }
    while (q.running.size < q.limit && q.hosts.length) {
      const next = q.hosts.shift()!;
      if (!next.alive) continue;
      q.running.add(next.id);
      void this.trigger(next, task).then((err) => {
        if (!err) return;
        this.log.warn({ task: task.id, host: next.id, err }, "queued preheat trigger failed");
        q.running.delete(next.id);
        this.advancePreheat(task);
      });
    }
    if (!q.hosts.length) task.preheatQueue = null;
  }

  private preheatTargets(task: Task, req: PreheatRequest): Host[] {
    let hosts = [...this.hosts.values()].filter((h) => h.alive && (req.scope === "all_peers" || h.info.isSeed));
    if (req.ips?.length) hosts = hosts.filter((h) => req.ips!.includes(h.info.ip));
    if (req.scope === "single_seed_peer") {
      const best = hosts.length ? this.pickSeedHost(task, hosts[0]!) : undefined;
      return best && hosts.includes(best) ? [best] : hosts.slice(0, 1);
    }
    if (req.count !== undefined) hosts = hosts.slice(0, req.count);
    else if (req.percentage !== undefined) hosts = hosts.slice(0, Math.max(1, Math.round((hosts.length * req.percentage) / 100)));
    return hosts;
  }

  taskStatus(taskId: string): TaskStatus {
    const task = this.tasks.get(taskId);
    if (!task) throw new KilnError("NOT_FOUND", `unknown task ${taskId}`);
    return {
      task: task.info(),
      peers: [...task.peers.values()].map((p) => ({
        peerId: p.id,
        hostId: p.host.id,
        hostname: p.host.info.hostname,
        ip: p.host.info.ip,
        isSeed: p.host.info.isSeed,
        state: p.state,
        finishedPieces: p.pieces.size,
        error: p.error,
      })),
    };
  }

  /** Drops hosts that stopped announcing and forgets idle tasks. */
  collectGarbage(now = Date.now()): void {
    for (const host of [...this.hosts.values()]) {
      if (now - host.lastSeen > this.opts.hostTimeoutMs) this.dropHost(host, "keepalive timed out");
    }
    for (const task of [...this.tasks.values()]) {
      if (task.preheatQueue) this.advancePreheat(task);
      if (task.peers.size === 0 && now - task.lastActivity > this.opts.taskIdleTtlMs) this.tasks.delete(task.id);
    }
  }

  private liveHost(hostId: string): Host {
    const host = this.hosts.get(hostId);
    if (!host?.alive) throw new KilnError("NOT_FOUND", `unknown host ${hostId}: announce it first`);
    return host;
  }

  private peer(taskId: string, peerId: string): Peer {
    const task = this.tasks.get(taskId);
    if (!task) throw new KilnError("NOT_FOUND", `unknown task ${taskId}`);
    const peer = task.peers.get(peerId);
    if (!peer) throw new KilnError("NOT_FOUND", `unknown peer ${peerId} on task ${taskId}`);
    return peer;
  }
}

type Completed = NonNullable<RegisterPeer["completed"]>;

/** A peer's claim to hold a whole task must agree with everything the task already knows. */
function checkCompleted(task: Task, c: Completed): void {
  if (task.pieceLength !== null && task.pieceLength !== c.pieceLength) {
    throw new KilnError("CONFLICT", `piece length ${c.pieceLength} differs from the task's ${task.pieceLength}`);
  }
  if (task.contentLength !== null && task.contentLength !== c.contentLength) {
    throw new KilnError("CONFLICT", `content length ${c.contentLength} differs from the task's ${task.contentLength}`);
  }
  const total = pieceCount(c.contentLength, c.pieceLength);
  const numbers = new Set(c.pieces.map((p) => p.number));
  if (numbers.size !== total || c.pieces.some((p) => p.number >= total)) {
    throw new KilnError("BAD_REQUEST", `a completed task must list each of its ${total} pieces once`);
  }
  for (const p of c.pieces) {
    const canonical = task.digests.get(p.number);
    if (canonical && canonical.digest !== p.digest) {
      throw new KilnError("CONFLICT", `piece ${p.number} digest ${p.digest} differs from the task's ${canonical.digest}`);
    }
  }
}

/** The peer verified every piece when it downloaded them; it becomes a parent holding all of them. */
function adoptCompleted(task: Task, peer: Peer, c: Completed): void {
  task.pieceLength = c.pieceLength;
  task.contentLength = c.contentLength;
  for (const p of c.pieces) {
    if (!task.digests.has(p.number)) task.digests.set(p.number, p);
    peer.pieces.add(p.number);
  }
  peer.fsm.to("running");
  peer.fsm.to("succeeded");
  if (task.state === "failed") task.fsm.to("pending");
  if (task.state === "pending") task.fsm.to("running");
  if (task.state === "running") task.fsm.to("succeeded");
  task.error = null;
}

function isOriginError(e: TaskError): boolean {
  return e.code === "ORIGIN_STATUS" || e.code === "ORIGIN_UNREACHABLE" || e.code === "DIGEST_MISMATCH";
}
