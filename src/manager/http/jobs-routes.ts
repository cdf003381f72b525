/**
 * Preheat jobs, twice: /oapi/v1/jobs (Dragonfly's Open API; personal access
 * token with the `job` scope) and /api/v1/jobs (the console; a signed-in user). Same
 * schemas, same service; guests and guest-owned tokens may only read.
 */
import { z } from "zod";
import type { FastifyRequest } from "fastify";
import { CONSOLE_API, OPEN_API } from "../../api/manager-paths.js";
import { CreateJobBody, JobView, ListJobsQuery, UpdateJobBody } from "../../api/jobs.js";
import { IdParams } from "../../api/fields.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { pageHeaders } from "./paging.js";
import { sessionHook } from "./session.js";

const errors = errorResponses(401, 403, 404, 409, 422, 429);

interface JobsApi {
  base: string;
  onRequest: (req: FastifyRequest) => Promise<void>;
  /** Who is calling: the token's or the session's user. */
  caller: (req: FastifyRequest) => { userId: number; name: string };
}

function registerJobsApi(app: ManagerApp, ctx: RouteContext, api: JobsApi): void {
  const { base, onRequest } = api;
  app.post(
    base,
    { onRequest, schema: { summary: "Create a preheat job", tags: ["jobs"], body: CreateJobBody, response: { 200: JobView, ...errors } } },
    async (req) => ctx.jobs.create(req.body, api.caller(req).userId),
  );

  app.get(
    base,
    { onRequest, schema: { summary: "List jobs (newest first)", tags: ["jobs"], querystring: ListJobsQuery, response: { 200: z.array(JobView), ...errors } } },
    async (req, reply) => {
      const { jobs, total } = await ctx.jobs.list(req.query);
      pageHeaders(req, reply, req.query, total);
      return jobs;
    },
  );

  app.get(
    `${base}/:id`,
    { onRequest, schema: { summary: "Get a job", tags: ["jobs"], params: IdParams, response: { 200: JobView, ...errors } } },
    async (req) => ctx.jobs.get(req.params.id),
  );

  app.patch(
    `${base}/:id`,
    { onRequest, schema: { summary: "Update a job's bio", tags: ["jobs"], params: IdParams, body: UpdateJobBody, response: { 200: JobView, ...errors } } },
    async (req) => ctx.jobs.update(req.params.id, req.body),
  );

  app.post(
    `${base}/:id/cancel`,
    {
      onRequest,
      schema: {
        summary: "Cancel a PENDING job: it ends as FAILURE, canceled by the caller (409 once it ended)",
        tags: ["jobs"],
        params: IdParams,
        response: { 200: JobView, ...errors },
      },
    },
    async (req) => ctx.jobs.cancel(req.params.id, api.caller(req).name),
  );

  app.delete(
    `${base}/:id`,
    { onRequest, schema: { summary: "Delete a job (a running one is stopped)", tags: ["jobs"], params: IdParams, response: { ...errors } } },
    async (req, reply) => {
      await ctx.jobs.delete(req.params.id);
      return reply.status(200).send(undefined as never);
    },
  );
}

export function registerJobRoutes(app: ManagerApp, ctx: RouteContext): void {
  registerJobsApi(app, ctx, {
    base: `${OPEN_API}/jobs`,
    onRequest: async (req) => {
      req.pat = await ctx.auth.pat(req, "job");
    },
    caller: (req) => ({ userId: req.pat!.userId, name: `${req.pat!.userName} (personal access token ${req.pat!.tokenId})` }),
  });
  registerJobsApi(app, ctx, {
    base: `${CONSOLE_API}/jobs`,
    onRequest: sessionHook(ctx),
    caller: (req) => ({ userId: req.session!.user.id, name: req.session!.user.name }),
  });
}
