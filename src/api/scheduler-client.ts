import { z } from "zod";
import { callJson, type JsonRequest } from "./http-json.js";
import { CLUSTER_SECRET_HEADER } from "./common.js";
import {
  SCHEDULER_API,
  HostAnnounceReply,
  PieceReportReply,
  PreheatReply,
  RegisterPeerReply,
  ScheduleReply,
  TaskStatus,
  type FailureReport,
  type HostAnnounce,
  type PeerResult,
  type PieceReport,
  type PreheatRequestInput,
  type RegisterPeerInput,
} from "./scheduler.js";

const Ok = z.object({ ok: z.literal(true) });

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

  announceHost(host: HostAnnounce) {
    return this.call(`${SCHEDULER_API}/hosts`, HostAnnounceReply, { body: host, timeoutMs: 5_000 });
  }

  leaveHost(hostId: string) {
    return this.call(`${SCHEDULER_API}/hosts/${hostId}`, Ok, { method: "DELETE", timeoutMs: 5_000 });
  }

  registerPeer(req: RegisterPeerInput) {
    return this.call(`${SCHEDULER_API}/peers`, RegisterPeerReply, { body: req });
  }

  schedule(taskId: string, peerId: string, q: { since: number; count?: number; waitMs?: number }) {
    return this.call(`${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/schedule`, ScheduleReply, {
      query: q,
      timeoutMs: (q.waitMs ?? 5_000) + 10_000,
    });
  }

  reportPieces(taskId: string, peerId: string, report: PieceReport) {
    return this.call(`${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/pieces`, PieceReportReply, { body: report });
  }

  reportFailure(taskId: string, peerId: string, report: FailureReport) {
    return this.call(`${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/failures`, Ok, { body: report });
  }

  reportResult(taskId: string, peerId: string, result: PeerResult) {
    return this.call(`${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/result`, Ok, { body: result });
  }

  leaveTask(taskId: string, peerId: string) {
    return this.call(`${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}`, Ok, { method: "DELETE" });
  }

  preheat(req: PreheatRequestInput) {
    return this.call(`${SCHEDULER_API}/preheat`, PreheatReply, { body: req });
  }

  taskStatus(taskId: string) {
    return this.call(`${SCHEDULER_API}/tasks/${taskId}`, TaskStatus);
  }
}
