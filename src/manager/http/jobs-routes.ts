/** /oapi/v1/jobs: Dragonfly's Open API for preheat jobs (seed 001). */
import { z } from "zod";
import { CreateJobBody, IdParams, JobView, ListJobsQuery, MANAGER_PATHS, UpdateJobBody } from "../../api/manager.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { linkHeader } from "./paging.js";

const errors = errorResponses(401, 403, 404, 422, 429);

export function registerJobRoutes(app: ManagerApp, ctx: RouteContext): void {
  const onRequest = async (req: Parameters<typeof ctx.auth.pat>[0]) => {
    req.pat = await ctx.auth.pat(req, "job");
  };

  app.post(
    MANAGER_PATHS.jobs,
    { onRequest, schema: { summary: "Create a preheat job", tags: ["jobs"], body: CreateJobBody, response: { 200: JobView, ...errors } } },
    async (req) => ctx.jobs.create(req.body, req.pat!.userId),
  );

  app.get(
    MANAGER_PATHS.jobs,
    { onRequest, schema: { summary: "List jobs (newest first)", tags: ["jobs"], querystring: ListJobsQuery, response: { 200: z.array(JobView), ...errors } } },
    async (req, reply) => {
      const { jobs, total } = await ctx.jobs.list(req.query);
      reply.header("link", linkHeader(req, req.query.page, req.query.per_page, total));
      reply.header("x-total-count", String(total));
      return jobs;
    },
  );

  app.get(
    `${MANAGER_PATHS.jobs}/:id`,
    { onRequest, schema: { summary: "Get a job", tags: ["jobs"], params: IdParams, response: { 200: JobView, ...errors } } },
    async (req) => ctx.jobs.get(req.params.id),
  );

  app.patch(
    `${MANAGER_PATHS.jobs}/:id`,
    { onRequest, schema: { summary: "Update a job's bio", tags: ["jobs"], params: IdParams, body: UpdateJobBody, response: { 200: JobView, ...errors } } },
    async (req) => ctx.jobs.update(req.params.id, req.body),
  );

  app.delete(
    `${MANAGER_PATHS.jobs}/:id`,
    { onRequest, schema: { summary: "Delete a job (a running one is stopped)", tags: ["jobs"], params: IdParams, response: { ...errors } } },
    async (req, reply) => {
      await ctx.jobs.delete(req.params.id);
      return reply.status(200).send(undefined as never);
    },
  );
}
