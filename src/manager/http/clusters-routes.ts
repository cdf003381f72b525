/** /oapi/v1/clusters (token scope `cluster`): scheduler clusters and who is in them. */
import { z } from "zod";
import { ClusterView, CreateClusterBody, IdParams, MANAGER_PATHS, UpdateClusterBody } from "../../api/manager.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { clusterViews } from "./cluster-view.js";
import { conflict, notFound, unprocessable } from "../errors.js";

const errors = errorResponses(401, 403, 404, 409, 422);

export function registerClusterRoutes(app: ManagerApp, ctx: RouteContext): void {
  const onRequest = async (req: Parameters<typeof ctx.auth.pat>[0]) => {
    req.pat = await ctx.auth.pat(req, "cluster");
  };
  const one = async (id: number) => {
    const row = await ctx.store.clusters.byId(id);
    if (!row) throw notFound(`scheduler cluster ${id} not found`);
    return (await clusterViews(ctx.store, [row], ctx.memberTimeoutMs))[0]!;
  };
  const nameFree = async (name: string, self?: number) => {
    const other = await ctx.store.clusters.byName(name);
    if (other && other.id !== self) throw conflict(`a scheduler cluster named ${name} already exists`);
  };

  app.get(
    MANAGER_PATHS.clusters,
    { onRequest, schema: { summary: "List scheduler clusters", tags: ["clusters"], response: { 200: z.array(ClusterView), ...errors } } },
    async () => clusterViews(ctx.store, await ctx.store.clusters.list(), ctx.memberTimeoutMs),
  );

  app.get(
    `${MANAGER_PATHS.clusters}/:id`,
    { onRequest, schema: { summary: "Get a scheduler cluster", tags: ["clusters"], params: IdParams, response: { 200: ClusterView, ...errors } } },
    async (req) => one(req.params.id),
  );

  app.post(
    MANAGER_PATHS.clusters,
    { onRequest, schema: { summary: "Create a scheduler cluster", tags: ["clusters"], body: CreateClusterBody, response: { 200: ClusterView, ...errors } } },
    async (req) => {
      await nameFree(req.body.name);
      const id = await ctx.store.clusters.create({ name: req.body.name, bio: req.body.bio, config: req.body.config, isDefault: req.body.is_default });
      return one(id);
    },
  );

  app.patch(
    `${MANAGER_PATHS.clusters}/:id`,
    { onRequest, schema: { summary: "Update a scheduler cluster", tags: ["clusters"], params: IdParams, body: UpdateClusterBody, response: { 200: ClusterView, ...errors } } },
    async (req) => {
      await one(req.params.id);
      if (req.body.name) await nameFree(req.body.name, req.params.id);
      if (req.body.is_default === false) throw unprocessable("is_default: make another cluster the default instead");
      await ctx.store.clusters.update(req.params.id, { name: req.body.name, bio: req.body.bio, config: req.body.config, isDefault: req.body.is_default });
      return one(req.params.id);
    },
  );

  app.delete(
    `${MANAGER_PATHS.clusters}/:id`,
    { onRequest, schema: { summary: "Delete a scheduler cluster", tags: ["clusters"], params: IdParams, response: { ...errors } } },
    async (req, reply) => {
      const c = await one(req.params.id);
      if (c.is_default) throw conflict(`scheduler cluster ${c.name} is the default cluster and cannot be deleted`);
      await ctx.store.clusters.delete(req.params.id);
      return reply.status(200).send(undefined as never);
    },
  );
}
