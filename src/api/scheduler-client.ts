import type { z } from "zod";
import { callJson, type JsonRequest } from "./http-json.js";
import { CLUSTER_SECRET_HEADER, Ok } from "./common.js";
import { HostsReport } from "./peers.js";
import { ImageImportReply, type ImageImportRequestInput } from "./peer.js";
import {
  SCHEDULER_PATHS,
  HostAnnounceReply,
  PieceReportReply,
  PreheatReply,
  RegisterPeerReply,
  ScheduleReply,
  TaskStatus,
  TaskHoldersReply,
  TaskKnownReply,
  SchedulerStats,
  DeleteTaskReply,
  type FailureReport,
  type HostAnnounceInput,
  type PeerResult,
  type PieceReport,
  type PreheatRequestInput,
  type RegisterPeerInput,
} from "./scheduler.js";

/** Typed client for the scheduler API; used by peers and the manager. */
export class SchedulerClient {
  private readonly headers: Record<string, string>;

  /** `clusterSecret`: the scheduler's KILN_CLUSTER_SECRET, when it has one. */
  constructor(
    readonly baseUrl: string,
    clusterSecret?: string,
  ) {
    this.headers = clusterSecret ? { [CLUSTER_SECRET_HEADER]: clusterSecret } : {};
  }

  private call<S extends z.ZodType>(path: string, reply: S, req: JsonRequest = {}): Promise<z.infer<S>> {
    return callJson(this.baseUrl, path, reply, { ...req, headers: { ...req.headers, ...this.headers } });
  }

  announceHost(host: HostAnnounceInput) {
    return this.call(SCHEDULER_PATHS.hosts, HostAnnounceReply, { body: host, timeoutMs: 5_000 });
  }

  /** Every live host this scheduler knows (the manager's sync_peers). */
  hosts() {
    return this.call(SCHEDULER_PATHS.hosts, HostsReport, { timeoutMs: 30_000 });
  }

  /** Relayed to the host's peer (pull schedules); NOT_FOUND when this scheduler does not know the host. */
  importImage(hostId: string, req: ImageImportRequestInput) {
    return this.call(SCHEDULER_PATHS.hostImages(hostId), ImageImportReply, { body: req, timeoutMs: 16 * 60_000 });
  }

  leaveHost(hostId: string) {
    return this.call(SCHEDULER_PATHS.host(hostId), Ok, { method: "DELETE", timeoutMs: 5_000 });
  }

  registerPeer(req: RegisterPeerInput) {
    return this.call(SCHEDULER_PATHS.peers, RegisterPeerReply, { body: req });
  }

  schedule(taskId: string, peerId: string, q: { since: number; count?: number; waitMs?: number }) {
    return this.call(SCHEDULER_PATHS.schedule(taskId, peerId), ScheduleReply, {
      query: q,
      timeoutMs: (q.waitMs ?? 5_000) + 10_000,
    });
  }

  reportPieces(taskId: string, peerId: string, report: PieceReport) {
    return this.call(SCHEDULER_PATHS.pieces(taskId, peerId), PieceReportReply, { body: report });
  }

  reportFailure(taskId: string, peerId: string, report: FailureReport) {
    return this.call(SCHEDULER_PATHS.failures(taskId, peerId), Ok, { body: report });
  }

  reportResult(taskId: string, peerId: string, result: PeerResult) {
    return this.call(SCHEDULER_PATHS.result(taskId, peerId), Ok, { body: result });
  }

  leaveTask(taskId: string, peerId: string) {
    return this.call(SCHEDULER_PATHS.peer(taskId, peerId), Ok, { method: "DELETE" });
  }

  preheat(req: PreheatRequestInput) {
    return this.call(SCHEDULER_PATHS.preheat, PreheatReply, { body: req });
  }

  taskHolders(taskId: string) {
    return this.call(SCHEDULER_PATHS.holders(taskId), TaskHoldersReply);
  }

  /** Waits for every holder's answer (each bounded by the peer control timeout). */
  deleteTask(taskId: string) {
    return this.call(SCHEDULER_PATHS.task(taskId), DeleteTaskReply, { method: "DELETE", timeoutMs: 30_000 });
  }

  taskStatus(taskId: string) {
    return this.call(SCHEDULER_PATHS.task(taskId), TaskStatus);
  }

  /** Whether this scheduler has the task with a peer on it (another scheduler of the cluster asking, within `timeoutMs`). */
  knowsTask(taskId: string, timeoutMs: number) {
    return this.call(SCHEDULER_PATHS.known(taskId), TaskKnownReply, { timeoutMs });
  }

  stats(timeoutMs = 2_000) {
    return this.call(SCHEDULER_PATHS.stats, SchedulerStats, { timeoutMs });
  }
}
