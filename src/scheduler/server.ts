/** HTTP routes of the scheduler; shapes and paths from src/api/scheduler.ts. */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { createJsonApi } from "../common/fastify.js";
import type { Logger } from "../common/logger.js";
import { CLUSTER_SECRET_HEADER, Ok, SafeId, TaskId } from "../api/common.js";
import { KilnError } from "../common/errors.js";
import { sameSecret, uploadCredentialFor } from "../common/secret.js";
import {
  SCHEDULER_API,
  SCHEDULER_PATHS,
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
  TaskHoldersReply,
  TaskKnownReply,
  SchedulerStats,
  DeleteTaskReply,
} from "../api/scheduler.js";
import { taskIdFor } from "../common/task-id.js";
import type { DownloadSpec } from "../api/common.js";
import type { OtherSchedulers } from "./other-schedulers.js";
import { SCHEDULER } from "../common/defaults.js";
import { HostsReport } from "../api/peers.js";
import { ImageImportReply, ImageImportRequest } from "../api/peer.js";
import type { SchedulerService } from "./service.js";

const PeerParams = z.object({ taskId: TaskId, peerId: SafeId });
/** Route patterns: the paths with fastify's parameter names in them. */
const HOST = SCHEDULER_PATHS.host(":hostId");
const TASK = SCHEDULER_PATHS.task(":taskId");
const HOLDERS = SCHEDULER_PATHS.holders(":taskId");
const TaskParams = z.object({ taskId: TaskId });
const PEER = SCHEDULER_PATHS.peer(":taskId", ":peerId");
const SCHEDULE = SCHEDULER_PATHS.schedule(":taskId", ":peerId");
const PIECES = SCHEDULER_PATHS.pieces(":taskId", ":peerId");
const FAILURES = SCHEDULER_PATHS.failures(":taskId", ":peerId");
const RESULT = SCHEDULER_PATHS.result(":taskId", ":peerId");

/** What a registration or preheat of a task another scheduler has is answered: nothing done here, go to `owner`. */
function movedRegistration(taskId: string, owner: string): RegisterPeerReply {
  const task = { id: taskId, state: "pending" as const, contentLength: null, pieceLength: null, totalPieces: null, error: null };
  return { taskId, owner, version: -1, action: "wait", task, pieces: [], parents: [] };
}

/**
 * `clusterSecret`: when set, every API call must carry it (peers, seed peers and the manager all do).
 * `others`: the other schedulers of the cluster, asked before a task new here is taken.
 */
export function buildSchedulerApi(service: SchedulerService, log: Logger, clusterSecret?: string, others?: OtherSchedulers) {
  /** Another scheduler that already has this task new to this one (none when it is here, or alone in its cluster). */
  const ownerElsewhere = async (spec: DownloadSpec): Promise<{ taskId: string; owner: string } | undefined> => {
    if (!others?.size) return undefined;
    const taskId = taskIdFor(spec);
    if (service.hasTask(taskId)) return undefined;
    const owner = await others.ownerOf(taskId);
    return owner ? { taskId, owner } : undefined;
  };
  const app = createJsonApi(log);
  // Replies are built from typed values, and every client validates what it receives
  // (api/http-json.ts): checking each reply here again cost about as much as the
  // scheduling itself (every digest of a registration reply through a regex).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  if (clusterSecret) {
    app.addHook("onRequest", async (req) => {
      if (!req.url.startsWith(`${SCHEDULER_API}/`)) return;
      if (!sameSecret(req.headers[CLUSTER_SECRET_HEADER], clusterSecret)) {
        throw new KilnError("UNAUTHORIZED", `this scheduler needs the cluster secret (${CLUSTER_SECRET_HEADER}, KILN_CLUSTER_SECRET)`);
      }
    });
  }

  app.get(SCHEDULER_PATHS.health, async () => ({ ok: true as const }));

  // Every scheduler of a cluster gives the same one; without a secret, only the hosts of this one share it.
  const uploadCredential = clusterSecret ? uploadCredentialFor(clusterSecret) : randomBytes(32).toString("base64url");
  app.post(SCHEDULER_PATHS.hosts, { schema: { body: HostAnnounce, response: { 200: HostAnnounceReply } } }, async (req) => {
    const created = service.announceHost(req.body);
    return { keepAliveMs: SCHEDULER.keepAliveMs, created, uploadCredential };
  });

  app.get(SCHEDULER_PATHS.hosts, { schema: { response: { 200: HostsReport } } }, async () => service.hostsReport());

  app.post(
    SCHEDULER_PATHS.hostImages(":hostId"),
    { schema: { params: z.object({ hostId: SafeId }), body: ImageImportRequest, response: { 200: ImageImportReply } } },
    async (req) => service.importImage(req.params.hostId, req.body),
  );

  app.delete(HOST, { schema: { params: z.object({ hostId: SafeId }), response: { 200: Ok } } }, async (req) => {
    service.leaveHost(req.params.hostId, "host left");
    return { ok: true as const };
  });

  app.post(SCHEDULER_PATHS.peers, { schema: { body: RegisterPeer, response: { 200: RegisterPeerReply } } }, async (req) => {
    // A task another scheduler has goes on there, whoever registers it: a new download, one
    // resumed after its scheduler went away (all its peers go to the same next one), a held copy.
    const moved = await ownerElsewhere(req.body.download);
    if (moved) return movedRegistration(moved.taskId, moved.owner);
    return service.register(req.body);
  });

  app.get(SCHEDULE, { schema: { params: PeerParams, querystring: ScheduleQuery, response: { 200: ScheduleReply } } }, async (req) =>
    service.schedule(req.params.taskId, req.params.peerId, req.query.since, req.query.count, req.query.waitMs),
  );

  app.post(PIECES, { schema: { params: PeerParams, body: PieceReport, response: { 200: PieceReportReply } } }, async (req) =>
    service.reportPieces(req.params.taskId, req.params.peerId, req.body),
  );

  app.post(FAILURES, { schema: { params: PeerParams, body: FailureReport, response: { 200: Ok } } }, async (req) => {
    service.reportFailure(req.params.taskId, req.params.peerId, req.body);
    return { ok: true as const };
  });

  app.post(RESULT, { schema: { params: PeerParams, body: PeerResult, response: { 200: Ok } } }, async (req) => {
    service.reportResult(req.params.taskId, req.params.peerId, req.body);
    return { ok: true as const };
  });

  app.delete(PEER, { schema: { params: PeerParams, response: { 200: Ok } } }, async (req) => {
    service.leaveTask(req.params.taskId, req.params.peerId);
    return { ok: true as const };
  });

  app.post(SCHEDULER_PATHS.preheat, { schema: { body: PreheatRequest, response: { 200: PreheatReply } } }, async (req) => {
    const moved = await ownerElsewhere(req.body.download);
    if (moved) return { taskId: moved.taskId, hosts: [], owner: moved.owner };
    return service.preheat(req.body);
  });

  app.get(SCHEDULER_PATHS.known(":taskId"), { schema: { params: TaskParams, response: { 200: TaskKnownReply } } }, async (req) => ({
    known: service.hasTask(req.params.taskId),
  }));

  app.get(SCHEDULER_PATHS.stats, { schema: { response: { 200: SchedulerStats } } }, async () => service.stats());

  app.get(TASK, { schema: { params: TaskParams, response: { 200: TaskStatus } } }, async (req) => service.taskStatus(req.params.taskId));

  app.get(HOLDERS, { schema: { params: TaskParams, response: { 200: TaskHoldersReply } } }, async (req) => service.holders(req.params.taskId));

  app.delete(TASK, { schema: { params: TaskParams, response: { 200: DeleteTaskReply } } }, async (req) => service.deleteTask(req.params.taskId));

  return app;
}
