/**
 * Schedulers and seed peers register here and keep alive, and peers find their schedulers
 * (api/registration.ts). No user token: they are cluster components; with a cluster
 * secret configured, they must present it. Their lists for the console: members-list-routes.ts.
 */
import { sameSecret } from "../../common/secret.js";
import type { FastifyRequest } from "fastify";
import { CLUSTER_SECRET_HEADER } from "../../api/common.js";
import { IdParams } from "../../api/fields.js";
import {
  KeepAliveReply,
  RegistrationReply,
  SchedulerRegistration,
  SchedulerSearchQuery,
  SchedulerSearchReply,
  SeedPeerRegistration,
} from "../../api/registration.js";
import { MANAGER_PATHS } from "../../api/manager-paths.js";
import { Ok } from "../../api/common.js";
import { readClusterConfig, readClusterScopes } from "../db/clusters.js";
import { bestCluster } from "../cluster-search.js";
import { memberView } from "./cluster-view.js";
import { errorResponses } from "./errors.js";
import type { MembersRepo } from "../db/members.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { notFound, unauthorized, unprocessable } from "../errors.js";

const errors = errorResponses(401, 404, 422);

/** Routes cluster components call (no user token): with a cluster secret configured, they must present it. */
export function clusterSecretHook(ctx: RouteContext): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    if (ctx.clusterSecret && !sameSecret(req.headers[CLUSTER_SECRET_HEADER], ctx.clusterSecret)) throw unauthorized();
  };
}

export function registerRegistrationRoutes(app: ManagerApp, ctx: RouteContext): void {
  const onRequest = clusterSecretHook(ctx);
  const clusterFor = async (id: number | undefined) => {
    const c = id === undefined ? await ctx.store.clusters.defaultCluster() : await ctx.store.clusters.byId(id);
    if (!c) throw unprocessable(`scheduler_cluster_id: unknown scheduler cluster ${id ?? "(default)"}`);
    return c.id;
  };
  const configOf = async (clusterId: number) => {
    const c = await ctx.store.clusters.byId(clusterId);
    if (!c) throw notFound(`scheduler cluster ${clusterId} no longer exists`);
    return readClusterConfig(c);
  };

  /** The other active schedulers of `clusterId` (their API URLs), told to a scheduler at registration and keepalive. */
  const otherSchedulers = async (clusterId: number, selfId: number) =>
    (await ctx.store.schedulers.byCluster([clusterId]))
      .map((m) => memberView(m, ctx.memberTimeoutMs))
      .filter((m) => m.state === "active" && m.id !== selfId)
      .map((m) => m.url);

  const lifecycle = (repo: MembersRepo, base: string, what: string) => {
    app.post(
      `${base}/:id/keepalive`,
      { onRequest, schema: { tags: ["members"], params: IdParams, response: { 200: KeepAliveReply, ...errors } } },
      async (req) => {
        const member = (await repo.keepAlive(req.params.id)) ? await repo.byId(req.params.id) : undefined;
        if (!member) throw notFound(`${what} ${req.params.id} is not registered`);
        const schedulers = repo === ctx.store.schedulers ? { schedulers: await otherSchedulers(member.scheduler_cluster_id, member.id) } : {};
        return { ok: true as const, scheduler_cluster_id: member.scheduler_cluster_id, config: await configOf(member.scheduler_cluster_id), ...schedulers };
      },
    );
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
      const schedulers = await otherSchedulers(clusterId, id);
      return { id, scheduler_cluster_id: clusterId, keepalive_interval_ms: ctx.keepAliveMs, config: await configOf(clusterId), schedulers };
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
      return { id, scheduler_cluster_id: clusterId, keepalive_interval_ms: ctx.keepAliveMs, config: await configOf(clusterId) };
    },
  );
  lifecycle(ctx.store.seedPeers, MANAGER_PATHS.seedPeers, "seed peer");

  app.get(
    MANAGER_PATHS.schedulerSearch,
    {
      onRequest,
      schema: {
        summary: "Find the schedulers of the cluster whose scopes match a peer best",
        tags: ["members"],
        querystring: SchedulerSearchQuery,
        response: { 200: SchedulerSearchReply, ...errors },
      },
    },
    async (req) => {
      const clusters = await ctx.store.clusters.list();
      const schedulers = (await ctx.store.schedulers.byCluster(clusters.map((c) => c.id)))
        .map((m) => memberView(m, ctx.memberTimeoutMs))
        .filter((m) => m.state === "active");
      const chosen = req.query.scheduler_cluster_id;
      const best = bestCluster(
        req.query,
        clusters
          .filter((c) => chosen === undefined || c.id === chosen)
          .map((c) => ({
            id: c.id,
            name: c.name,
            isDefault: c.is_default === 1,
            scopes: readClusterScopes(c),
            hasScheduler: schedulers.some((m) => m.scheduler_cluster_id === c.id),
          })),
      );
      if (!best) throw notFound("no scheduler cluster has an active scheduler");
      return {
        scheduler_cluster_id: best.id,
        scheduler_cluster_name: best.name,
        schedulers: schedulers
          .filter((m) => m.scheduler_cluster_id === best.id)
          .map((m) => ({ id: m.id, hostname: m.hostname, ip: m.ip, port: m.port, url: m.url })),
      };
    },
  );
}
