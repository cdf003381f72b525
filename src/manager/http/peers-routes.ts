/**
 * The peer inventory: schedulers report their hosts here (cluster secret, like
 * keepalives), and the console (/api/v1/peers, signed in) and the Open API
 * (/oapi/v1/peers, token scope `cluster`) list them, paged and filtered server-side.
 */
import { z } from "zod";
import type { FastifyRequest } from "fastify";
import { IdParams } from "../../api/fields.js";
import { MANAGER_PATHS } from "../../api/manager-paths.js";
import { HostsReport, ListPeersQuery, PeerView, TrafficQuery, TrafficView, type Labels } from "../../api/peers.js";
import { Ok } from "../../api/common.js";
import type { PeerRow } from "../db/schema.js";
import { MANAGER } from "../defaults.js";
import { notFound, unprocessable } from "../errors.js";
import { nowIso, showTime } from "../time.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { pageHeaders } from "./paging.js";
import { sessionHook } from "./session.js";
import { clusterSecretHook } from "./registration-routes.js";

const errors = errorResponses(401, 403, 404, 422);

export function peerView(r: PeerRow, staleBefore: string): PeerView {
  return {
    id: r.id,
    created_at: showTime(r.created_at),
    updated_at: showTime(r.updated_at),
    host_id: r.host_id,
    hostname: r.hostname,
    ip: r.ip,
    port: r.port,
    proxy_port: r.proxy_port,
    metrics_port: r.metrics_port,
    type: r.type === "super" ? "super" : "normal",
    idc: r.idc,
    location: r.location,
    labels: JSON.parse(r.labels) as Labels,
    version: r.version,
    state: r.state === "active" && r.updated_at >= staleBefore ? "active" : "inactive",
    task_count: Number(r.task_count),
    bytes_stored: Number(r.bytes_stored),
    free_disk_bytes: Number(r.free_disk_bytes),
    uploaded_bytes: Number(r.uploaded_bytes),
    swarm_bytes: Number(r.swarm_bytes),
    origin_bytes: Number(r.origin_bytes),
    last_seen_at: showTime(r.last_seen_at),
    scheduler_cluster_id: r.scheduler_cluster_id,
  };
}

/** `zone=a,kubernetes.io/arch=amd64` → { zone: "a", "kubernetes.io/arch": "amd64" }. */
function parseSelector(s: string | undefined): Labels | undefined {
  if (!s) return undefined;
  const out: Labels = {};
  for (const pair of s.split(",")) {
    const i = pair.indexOf("=");
    if (i <= 0) throw unprocessable(`labels: ${JSON.stringify(pair)} is not key=value`);
    out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return out;
}

/** Minute buckets summed into the chart's buckets (1 min up to 2 h, 10 min up to a day, 1 h beyond), empty ones as 0. */
export function trafficView(rows: { minute: string; swarm: number; origin: number }[], minutes: number, now = Date.now()): TrafficView {
  const bucketSeconds = minutes <= 120 ? 60 : minutes <= 1440 ? 600 : 3600;
  const size = bucketSeconds * 1000;
  const first = Math.floor((now - minutes * 60_000) / size) * size;
  const points: TrafficView["points"] = [];
  for (let t = first; t <= now; t += size) points.push({ at: new Date(t).toISOString(), swarm_bytes: 0, origin_bytes: 0 });
  for (const r of rows) {
    const point = points[Math.floor((Date.parse(r.minute) - first) / size)];
    if (!point) continue;
    point.swarm_bytes += r.swarm;
    point.origin_bytes += r.origin;
  }
  const sum = (k: "swarm_bytes" | "origin_bytes") => points.reduce((n, p) => n + p[k], 0);
  return { bucket_seconds: bucketSeconds, points, swarm_bytes: sum("swarm_bytes"), origin_bytes: sum("origin_bytes") };
}

/** Traffic older than the longest window the chart shows is dropped (at most hourly, by whichever manager gets a report). */
const TRAFFIC_KEPT_MINUTES = 7 * 24 * 60;

export function registerPeerRoutes(app: ManagerApp, ctx: RouteContext): void {
  let prunedAt = 0;
  app.post(
    `${MANAGER_PATHS.schedulers}/:id/hosts`,
    {
      onRequest: clusterSecretHook(ctx),
      // A full snapshot of a large cluster is bigger than fastify's 1 MiB default.
      bodyLimit: 64 * 1024 * 1024,
      schema: { summary: "A scheduler's hosts (a full snapshot)", tags: ["members"], params: IdParams, body: HostsReport, response: { 200: Ok, ...errors } },
    },
    async (req) => {
      const scheduler = await ctx.store.schedulers.byId(req.params.id);
      if (!scheduler) throw notFound(`scheduler ${req.params.id} is not registered`);
      await ctx.store.peers.applyReport(scheduler.scheduler_cluster_id, scheduler.id, req.body.hosts);
      if (Date.now() - prunedAt > 3_600_000) {
        prunedAt = Date.now();
        await ctx.store.peers.pruneTraffic(nowIso(Date.now() - TRAFFIC_KEPT_MINUTES * 60_000));
      }
      return { ok: true as const };
    },
  );

  const list = (base: string, onRequest: (req: FastifyRequest) => Promise<void>) =>
    app.get(
      base,
      {
        onRequest,
        schema: {
          summary: "List peers (hosts the schedulers report), paged and filtered",
          tags: ["peers"],
          querystring: ListPeersQuery,
          response: { 200: z.array(PeerView), ...errors },
        },
      },
      async (req, reply) => {
        const q = req.query;
        const staleBefore = nowIso(Date.now() - MANAGER.peerStaleMs);
        const { rows, total } = await ctx.store.peers.list({
          clusterId: q.scheduler_cluster_id,
          q: q.q,
          type: q.type,
          state: q.state,
          labels: parseSelector(q.labels),
          staleBefore,
          page: q.page,
          perPage: q.per_page,
        });
        pageHeaders(req, reply, q, total);
        return rows.map((r) => peerView(r, staleBefore));
      },
    );
  list(MANAGER_PATHS.peers, sessionHook(ctx));

  app.get(
    MANAGER_PATHS.traffic,
    {
      onRequest: sessionHook(ctx),
      schema: {
        summary: "Bytes peers got from the swarm vs from origins, per time bucket",
        tags: ["peers"],
        querystring: TrafficQuery,
        response: { 200: TrafficView, ...errors },
      },
    },
    async (req) => {
      const now = Date.now();
      const rows = await ctx.store.peers.traffic(nowIso(now - req.query.minutes * 60_000 - 3_600_000), req.query.scheduler_cluster_id);
      return trafficView(rows, req.query.minutes, now);
    },
  );
  list(MANAGER_PATHS.openPeers, async (req) => {
    req.pat = await ctx.auth.pat(req, "cluster");
  });
}
