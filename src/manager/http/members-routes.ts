/**
 * Schedulers and seed peers register here and keep alive. No user token: they are
 * cluster components; with a cluster secret configured, they must present it.
 */
import { sameSecret } from "../../common/secret.js";
import type { FastifyRequest } from "fastify";
import { CLUSTER_SECRET_HEADER, IdParams, MANAGER_PATHS, RegistrationReply, SchedulerRegistration, SeedPeerRegistration } from "../../api/manager.js";
import { Ok } from "../../api/common.js";
import { errorResponses } from "./errors.js";
import type { MembersRepo } from "../db/members.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { notFound, unauthorized, unprocessable } from "../errors.js";

const errors = errorResponses(401, 404, 422);

export function registerMemberRoutes(app: ManagerApp, ctx: RouteContext): void {
  const onRequest = async (req: FastifyRequest) => {
    if (!ctx.clusterSecret) return;
    if (!sameSecret(req.headers[CLUSTER_SECRET_HEADER], ctx.clusterSecret)) throw unauthorized();
  };
  const clusterFor = async (id: number | undefined) => {
    const c = id === undefined ? await ctx.store.clusters.defaultCluster() : await ctx.store.clusters.byId(id);
    if (!c) throw unprocessable(`scheduler_cluster_id: unknown scheduler cluster ${id ?? "(default)"}`);
    return c.id;
  };

  const lifecycle = (repo: MembersRepo, base: string, what: string) => {
    app.post(`${base}/:id/keepalive`, { onRequest, schema: { tags: ["members"], params: IdParams, response: { 200: Ok, ...errors } } }, async (req) => {
      if (!(await repo.keepAlive(req.params.id))) throw notFound(`${what} ${req.params.id} is not registered`);
      return { ok: true as const };
    });
    app.delete(`${base}/:id`, { onRequest, schema: { tags: ["members"], params: IdParams, response: { 200: Ok, ...errors } } }, async (req) => {
      if (!(await repo.remove(req.params.id))) throw notFound(`${what} ${req.params.id} is not registered`);
      ctx.log.info({ [what.replace(" ", "_")]: req.params.id }, `${what} left`);
      return { ok: true as const };
    });
  };

  app.post(
    MANAGER_PATHS.schedulers,
    { onRequest, schema: { tags: ["members"], body: SchedulerRegistration, response: { 200: RegistrationReply, ...errors } } },
    async (req) => {
      const b = req.body;
      const clusterId = await clusterFor(b.scheduler_cluster_id);
      const host = b.ip.includes(":") ? `[${b.ip}]` : b.ip;
      const id = await ctx.store.schedulers.register({
        clusterId,
        hostname: b.hostname,
        ip: b.ip,
        port: b.port,
        url: b.url ?? `http://${host}:${b.port}`,
        type: "",
      });
      return { id, scheduler_cluster_id: clusterId, keepalive_interval_ms: ctx.keepAliveMs };
    },
  );
  lifecycle(ctx.store.schedulers, MANAGER_PATHS.schedulers, "scheduler");

  app.post(
    MANAGER_PATHS.seedPeers,
    { onRequest, schema: { tags: ["members"], body: SeedPeerRegistration, response: { 200: RegistrationReply, ...errors } } },
    async (req) => {
      const b = req.body;
      const clusterId = await clusterFor(b.scheduler_cluster_id);
      const host = b.ip.includes(":") ? `[${b.ip}]` : b.ip;
      const id = await ctx.store.seedPeers.register({ clusterId, hostname: b.hostname, ip: b.ip, port: b.port, url: `http://${host}:${b.port}`, type: b.type });
      return { id, scheduler_cluster_id: clusterId, keepalive_interval_ms: ctx.keepAliveMs };
    },
  );
  lifecycle(ctx.store.seedPeers, MANAGER_PATHS.seedPeers, "seed peer");
}
