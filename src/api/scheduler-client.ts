import { z } from "zod";
import { callJson } from "./http-json.js";
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
  constructor(readonly baseUrl: string) {}

  announceHost(host: HostAnnounce) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/hosts`, HostAnnounceReply, { body: host, timeoutMs: 5_000 });
  }

  leaveHost(hostId: string) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/hosts/${hostId}`, Ok, { method: "DELETE", timeoutMs: 5_000 });
  }

  registerPeer(req: RegisterPeerInput) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/peers`, RegisterPeerReply, { body: req });
  }

  schedule(taskId: string, peerId: string, q: { since: number; count?: number; waitMs?: number }) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/schedule`, ScheduleReply, {
      query: q,
      timeoutMs: (q.waitMs ?? 5_000) + 10_000,
    });
  }

  reportPieces(taskId: string, peerId: string, report: PieceReport) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/pieces`, PieceReportReply, { body: report });
  }

  reportFailure(taskId: string, peerId: string, report: FailureReport) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/failures`, Ok, { body: report });
  }

  reportResult(taskId: string, peerId: string, result: PeerResult) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}/result`, Ok, { body: result });
  }

  leaveTask(taskId: string, peerId: string) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}`, Ok, { method: "DELETE" });
  }

  preheat(req: PreheatRequestInput) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/preheat`, PreheatReply, { body: req });
  }

  taskStatus(taskId: string) {
    return callJson(this.baseUrl, `${SCHEDULER_API}/tasks/${taskId}`, TaskStatus);
  }
}
