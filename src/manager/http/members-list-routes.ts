/** The console's view of schedulers and seed peers (GET /api/v1/schedulers, /api/v1/seed-peers): paged, searchable, live state. */
import { z } from "zod";
import { IdParams } from "../../api/fields.js";
import { ListMembersQuery, MemberView } from "../../api/members.js";
import { MANAGER_PATHS } from "../../api/manager-paths.js";
import type { MembersRepo } from "../db/members.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { notFound } from "../errors.js";
import { nowIso } from "../time.js";
import { memberView } from "./cluster-view.js";
import { pageHeaders } from "./paging.js";
import { sessionHook } from "./session.js";
import { SchedulerClient } from "../../api/scheduler-client.js";

/** How long the list waits for each active scheduler's task count. */
const STATS_TIMEOUT_MS = 1_000;

const errors = errorResponses(400, 401, 403, 404);

export function registerMemberListRoutes(app: ManagerApp, ctx: RouteContext): void {
  const onRequest = sessionHook(ctx);
  const lists = (repo: MembersRepo, base: string, what: string, noun: string) => {
    app.get(
      base,
      { onRequest, schema: { tags: [what], querystring: ListMembersQuery, response: { 200: z.array(MemberView), ...errors } } },
      async (req, reply) => {
        const q = req.query;
        const now = Date.now();
        const { rows, total } = await repo.list({
          page: q.page,
          perPage: q.per_page,
          clusterId: q.scheduler_cluster_id,
          search: q.hostname,
          state: q.state,
          freshSince: nowIso(now - ctx.memberTimeoutMs),
        });
        pageHeaders(req, reply, q, total);
        const views = rows.map((m) => memberView(m, ctx.memberTimeoutMs, now));
        if (repo !== ctx.store.schedulers) return views;
        // Tasks per scheduler, asked of each active one at once (a page is at most 100).
        return Promise.all(
          views.map(async (v) => {
            if (v.state !== "active") return { ...v, tasks: null };
            const stats = await new SchedulerClient(v.url, ctx.clusterSecret).stats(STATS_TIMEOUT_MS).catch(() => undefined);
            return { ...v, tasks: stats?.tasks ?? null };
          }),
        );
      },
    );
    app.get(`${base}/:id`, { onRequest, schema: { tags: [what], params: IdParams, response: { 200: MemberView, ...errors } } }, async (req) => {
      const m = await repo.byId(req.params.id);
      if (!m) throw notFound(`${noun} ${req.params.id} not found`);
      return memberView(m, ctx.memberTimeoutMs);
    });
  };
  lists(ctx.store.schedulers, MANAGER_PATHS.schedulers, "schedulers", "scheduler");
  lists(ctx.store.seedPeers, MANAGER_PATHS.seedPeers, "seed-peers", "seed peer");
}
