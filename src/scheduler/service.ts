/**
 * The scheduler's operations, as the HTTP routes (server.ts) call them: a thin
 * façade over the resources (hosts, tasks, peers, seed peers), registration,
 * scheduling, reports, preheat and the status view.
 */
import { KilnError } from "../common/errors.js";
import { SCHEDULER } from "../common/defaults.js";
import type { Logger } from "../common/logger.js";
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
  SchedulerStats,
  TaskHoldersReply,
  DeleteTaskReply,
} from "../api/scheduler.js";
import { defaultSchedulerOptions, type SchedulerOptions } from "./options.js";
import type { HostsReport } from "../api/peers.js";
import type { ImageImportReply, ImageImportRequest } from "../api/peer.js";
import { Preheat } from "./preheat.js";
import { Registration } from "./registration.js";
import { Reports } from "./reports.js";
import type { HostManager } from "./resource/hosts.js";
import { Resource } from "./resource/resource.js";
import type { ControlClientFactory } from "./resource/peer-control.js";
import type { TaskManager } from "./resource/tasks.js";
import { RoleAssigner } from "./scheduling/roles.js";
import { Scheduling } from "./scheduling/scheduling.js";
import { taskStatus } from "./status.js";
import { deleteTask, taskHolders } from "./task-admin.js";

export { defaultSchedulerOptions, type SchedulerOptions } from "./options.js";

export class SchedulerService {
  private readonly resource: Resource;
  private readonly registration: Registration;
  private readonly scheduling: Scheduling;
  private readonly reports: Reports;
  private readonly preheats: Preheat;
  /** Shared by scheduling and registration, so limits the manager sets apply to the next answer. */
  private readonly limits: SchedulerOptions & { maxScheduleWaitMs: number };

  constructor(
    private readonly log: Logger,
    private readonly opts: SchedulerOptions = defaultSchedulerOptions,
    /** How seed peers are reached (tests pass a fake). */
    newControlClient?: ControlClientFactory,
  ) {
    this.resource = new Resource(log, newControlClient);
    const roles = new RoleAssigner(this.resource.peerControl, log, opts);
    this.limits = { ...opts, maxScheduleWaitMs: SCHEDULER.maxScheduleWaitMs };
    this.scheduling = new Scheduling(this.resource.tasks, roles, this.limits);
    this.registration = new Registration(this.resource, roles, this.scheduling, this.limits);
    this.preheats = new Preheat(this.resource, log);
    this.reports = new Reports(this.resource.tasks, log, (task) => this.preheats.advance(task));
  }

  get hosts(): HostManager {
    return this.resource.hosts;
  }

  /** The parent limits of the scheduler's cluster (from the manager); returns whether they changed. */
  applyParentLimits(l: { parentsPerSchedule: number; filterParentLimit: number }): boolean {
    if (l.parentsPerSchedule === this.limits.parentsPerSchedule && l.filterParentLimit === this.limits.filterParentLimit) return false;
    this.limits.parentsPerSchedule = l.parentsPerSchedule;
    this.limits.filterParentLimit = l.filterParentLimit;
    return true;
  }

  get tasks(): TaskManager {
    return this.resource.tasks;
  }

  /** Returns true when the host was not known (its peer should re-register the tasks it holds). */
  announceHost(info: HostAnnounce): boolean {
    return this.resource.announceHost(info);
  }

  leaveHost(hostId: string, reason: string): void {
    const host = this.resource.hosts.get(hostId);
    if (!host) throw new KilnError("NOT_FOUND", `unknown host ${hostId}`);
    this.resource.dropHost(host, reason);
  }

  register(req: RegisterPeer): RegisterPeerReply {
    return this.registration.register(req);
  }

  /** Long poll; `since` is the version of the peer's last answer, whose digests it already holds. */
  schedule(taskId: string, peerId: string, since: number, count: number | undefined, waitMs: number | undefined): Promise<ScheduleReply> {
    return this.scheduling.schedule(taskId, peerId, since, count, waitMs);
  }

  reportPieces(taskId: string, peerId: string, report: PieceReport): PieceReportReply {
    return this.reports.pieces(taskId, peerId, report);
  }

  reportFailure(taskId: string, peerId: string, report: FailureReport): void {
    this.reports.failure(taskId, peerId, report);
  }

  reportResult(taskId: string, peerId: string, result: PeerResult): void {
    this.reports.result(taskId, peerId, result);
  }

  leaveTask(taskId: string, peerId: string): void {
    const peer = this.resource.tasks.peer(taskId, peerId);
    peer.task.leave(peer);
  }

  preheat(req: PreheatRequest): Promise<PreheatReply> {
    return this.preheats.preheat(req);
  }

  /** The task is here with a peer on it: this scheduler owns it (another scheduler of the cluster asking). */
  hasTask(taskId: string): boolean {
    const task = this.resource.tasks.get(taskId);
    return task !== undefined && task.peers.size > 0;
  }

  /** Tasks with a peer on them, live hosts and peers: the manager's list of schedulers shows them. */
  stats(): SchedulerStats {
    let tasks = 0;
    let peers = 0;
    for (const t of this.resource.tasks.values()) {
      if (t.peers.size === 0) continue;
      tasks++;
      peers += t.peers.size;
    }
    let hosts = 0;
    for (const h of this.resource.hosts.values()) if (h.alive) hosts++;
    return { tasks, hosts, peers };
  }

  taskStatus(taskId: string): TaskStatus {
    return taskStatus(this.resource.tasks.task(taskId));
  }

  /** Every live host, for the manager's peer inventory. */
  hostsReport(): HostsReport {
    return { hosts: [...this.resource.hosts.values()].filter((h) => h.alive).map((h) => h.record()) };
  }

  /** Relays an image import to the host's peer; NOT_FOUND for a host this scheduler does not know. */
  importImage(hostId: string, req: ImageImportRequest): Promise<ImageImportReply> {
    const host = this.resource.hosts.get(hostId);
    if (!host?.alive) throw new KilnError("NOT_FOUND", `unknown host ${hostId}`);
    return this.resource.peerControl.importImage(host, req);
  }

  holders(taskId: string): TaskHoldersReply {
    return taskHolders(this.resource, taskId);
  }

  async deleteTask(taskId: string): Promise<DeleteTaskReply> {
    const task = this.resource.tasks.get(taskId);
    const reply = await deleteTask(this.resource, taskId, this.log);
    if (task) this.preheats.forget(task);
    return reply;
  }

  /** Drops hosts that stopped announcing, moves preheat queues on, forgets idle tasks. */
  collectGarbage(now = Date.now()): void {
    this.resource.dropExpiredHosts(now, this.opts.hostTimeoutMs);
    this.preheats.advanceAll();
    for (const task of this.resource.tasks.forgetIdle(now, this.opts.taskIdleTtlMs)) this.preheats.forget(task);
  }
}
