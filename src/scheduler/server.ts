/** HTTP routes of the scheduler; shapes from src/api/scheduler.ts. */
import { z } from "zod";
import { createJsonApi } from "../common/fastify.js";
import type { Logger } from "../common/logger.js";
import { CLUSTER_SECRET_HEADER, SafeId, TaskId } from "../api/common.js";
import { KilnError } from "../common/errors.js";
import { sameSecret } from "../common/secret.js";
import {
  SCHEDULER_API,
  FailureReport,
  HostAnnounce,
  HostAnnounceReply,
  PeerResult,
  PieceReport,
  PieceReportReply,
  PreheatReply,
  PreheatRequest,
  RegisterPeer,
  RegisterPeerReply,
  ScheduleQuery,
  ScheduleReply,
  TaskStatus,
} from "../api/scheduler.js";
import { SCHEDULER } from "../common/defaults.js";
import type { SchedulerService } from "./service.js";

const Ok = z.object({ ok: z.literal(true) });
const PeerParams = z.object({ taskId: TaskId, peerId: SafeId });

/** `clusterSecret`: when set, every API call must carry it (peers, seed peers and the manager all do). */
export function buildSchedulerApi(service: SchedulerService, log: Logger, clusterSecret?: string) {
  const app = createJsonApi(log);
  const api = SCHEDULER_API;

  if (clusterSecret) {
    app.addHook("onRequest", async (req) => {
      if (!req.url.startsWith(`${api}/`)) return;
      if (!sameSecret(req.headers[CLUSTER_SECRET_HEADER], clusterSecret)) {
        throw new KilnError("UNAUTHORIZED", `this scheduler needs the cluster secret (${CLUSTER_SECRET_HEADER}, KILN_CLUSTER_SECRET)`);
      }
    });
  }

  app.get("/healthy", async () => ({ ok: true as const }));

  app.post(`${api}/hosts`, { schema: { body: HostAnnounce, response: { 200: HostAnnounceReply } } }, async (req) => {
    const created = service.announceHost(req.body);
    return { keepAliveMs: SCHEDULER.keepAliveMs, created };
  });

  app.delete(`${api}/hosts/:hostId`, { schema: { params: z.object({ hostId: SafeId }), response: { 200: Ok } } }, async (req) => {
    service.leaveHost(req.params.hostId, "host left");
    return { ok: true as const };
  });

  app.post(`${api}/peers`, { schema: { body: RegisterPeer, response: { 200: RegisterPeerReply } } }, async (req) =>
    service.register(req.body),
  );

  app.get(
    `${api}/tasks/:taskId/peers/:peerId/schedule`,
    { schema: { params: PeerParams, querystring: ScheduleQuery, response: { 200: ScheduleReply } } },
    async (req) => service.schedule(req.params.taskId, req.params.peerId, req.query.since, req.query.count, req.query.waitMs),
  );

  app.post(
    `${api}/tasks/:taskId/peers/:peerId/pieces`,
    { schema: { params: PeerParams, body: PieceReport, response: { 200: PieceReportReply } } },
    async (req) => service.reportPieces(req.params.taskId, req.params.peerId, req.body),
  );

  app.post(
    `${api}/tasks/:taskId/peers/:peerId/failures`,
    { schema: { params: PeerParams, body: FailureReport, response: { 200: Ok } } },
    async (req) => {
      service.reportFailure(req.params.taskId, req.params.peerId, req.body);
      return { ok: true as const };
    },
  );

  app.post(
    `${api}/tasks/:taskId/peers/:peerId/result`,
    { schema: { params: PeerParams, body: PeerResult, response: { 200: Ok } } },
    async (req) => {
      service.reportResult(req.params.taskId, req.params.peerId, req.body);
      return { ok: true as const };
    },
  );

  app.delete(`${api}/tasks/:taskId/peers/:peerId`, { schema: { params: PeerParams, response: { 200: Ok } } }, async (req) => {
    service.leaveTask(req.params.taskId, req.params.peerId);
    return { ok: true as const };
  });

  app.post(`${api}/preheat`, { schema: { body: PreheatRequest, response: { 200: PreheatReply } } }, async (req) =>
    service.preheat(req.body),
  );

  app.get(`${api}/tasks/:taskId`, { schema: { params: z.object({ taskId: TaskId }), response: { 200: TaskStatus } } }, async (req) =>
    service.taskStatus(req.params.taskId),
  );

  return app;
}
