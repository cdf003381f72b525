/**
 * Pull schedules, twice: /oapi/v1/pull-schedules (personal access token with the `job`
 * scope) and /api/v1/pull-schedules (the console). Guests and guest-owned tokens read only.
 */
import { z } from "zod";
import type { FastifyRequest } from "fastify";
import { CONSOLE_API, OPEN_API } from "../../api/manager-paths.js";
import { IdParams } from "../../api/fields.js";
import { PageQuery } from "../../api/paging.js";
import { CreatePullScheduleBody, PullScheduleView, UpdatePullScheduleBody } from "../../api/puller.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { pageHeaders } from "./paging.js";
import { sessionHook } from "./session.js";

const errors = errorResponses(401, 403, 404, 409, 422);

function registerApi(app: ManagerApp, ctx: RouteContext, base: string, onRequest: (req: FastifyRequest) => Promise<void>): void {
  const tags = ["pull-schedules"];
  app.post(
    base,
    {
      onRequest,
      schema: {
        summary: "Create a pull schedule (runs at once, then every interval)",
        tags,
        body: CreatePullScheduleBody,
        response: { 200: PullScheduleView, ...errors },
      },
    },
    async (req) => ctx.pulls.create(req.body),
  );
  app.get(
    base,
    { onRequest, schema: { summary: "List pull schedules", tags, querystring: PageQuery, response: { 200: z.array(PullScheduleView), ...errors } } },
    async (req, reply) => {
      const { items, total } = await ctx.pulls.list(req.query);
      pageHeaders(req, reply, req.query, total);
      return items;
    },
  );
  app.get(
    `${base}/:id`,
    {
      onRequest,
      schema: {
        summary: "Get a pull schedule with the image × node status of its last run",
        tags,
        params: IdParams,
        response: { 200: PullScheduleView, ...errors },
      },
    },
    async (req) => ctx.pulls.get(req.params.id),
  );
  app.patch(
    `${base}/:id`,
    {
      onRequest,
      schema: {
        summary: "Update a pull schedule (checked again at once)",
        tags,
        params: IdParams,
        body: UpdatePullScheduleBody,
        response: { 200: PullScheduleView, ...errors },
      },
    },
    async (req) => ctx.pulls.update(req.params.id, req.body),
  );
  app.post(
    `${base}/:id/run`,
    { onRequest, schema: { summary: "Run a pull schedule now", tags, params: IdParams, response: { 200: PullScheduleView, ...errors } } },
    async (req) => ctx.pulls.runNow(req.params.id),
  );
  app.delete(
    `${base}/:id`,
    { onRequest, schema: { summary: "Delete a pull schedule", tags, params: IdParams, response: { ...errors } } },
    async (req, reply) => {
      await ctx.pulls.delete(req.params.id);
      return reply.status(200).send(undefined as never);
    },
  );
}

export function registerPullScheduleRoutes(app: ManagerApp, ctx: RouteContext): void {
  registerApi(app, ctx, `${OPEN_API}/pull-schedules`, async (req) => {
    req.pat = await ctx.auth.pat(req, "job");
  });
  registerApi(app, ctx, `${CONSOLE_API}/pull-schedules`, sessionHook(ctx));
}
