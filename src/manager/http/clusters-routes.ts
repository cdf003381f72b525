/**
 * Scheduler clusters and who is in them, twice: /oapi/v1/clusters (token scope
 * `cluster`) and /api/v1/clusters (the console; a signed-in user, guests read only).
 */
import { z } from "zod";
import type { FastifyRequest } from "fastify";
import { CONSOLE_API, OPEN_API } from "../../api/manager-paths.js";
import { ClusterView, CreateClusterBody, UpdateClusterBody } from "../../api/clusters.js";
import { IdParams } from "../../api/fields.js";
import { PageQuery } from "../../api/paging.js";
import { errorResponses } from "./errors.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { clusterViews } from "./cluster-view.js";
import { conflict, notFound, unprocessable } from "../errors.js";
import { sessionHook } from "./session.js";
import { pageHeaders } from "./paging.js";

const errors = errorResponses(401, 403, 404, 409, 422);

const ListClustersQuery = PageQuery.partial();

interface ClustersApi {
  base: string;
  onRequest: (req: FastifyRequest) => Promise<void>;
  /** Without page/per_page: the Open API answers every cluster, the console API the first page. */
  pagedByDefault: boolean;
}

function registerClustersApi(app: ManagerApp, ctx: RouteContext, { base, onRequest, pagedByDefault }: ClustersApi): void {
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
    base,
    {
      onRequest,
      schema: { summary: "List scheduler clusters", tags: ["clusters"], querystring: ListClustersQuery, response: { 200: z.array(ClusterView), ...errors } },
    },
    async (req, reply) => {
      const all = await ctx.store.clusters.list();
      if (req.query.page === undefined && req.query.per_page === undefined && !pagedByDefault) return clusterViews(ctx.store, all, ctx.memberTimeoutMs);
      const q = PageQuery.parse(req.query);
      pageHeaders(req, reply, q, all.length);
      return clusterViews(ctx.store, all.slice((q.page - 1) * q.per_page, q.page * q.per_page), ctx.memberTimeoutMs);
    },
  );

  app.get(
    `${base}/:id`,
    { onRequest, schema: { summary: "Get a scheduler cluster", tags: ["clusters"], params: IdParams, response: { 200: ClusterView, ...errors } } },
    async (req) => one(req.params.id),
  );

  app.post(
    base,
    { onRequest, schema: { summary: "Create a scheduler cluster", tags: ["clusters"], body: CreateClusterBody, response: { 200: ClusterView, ...errors } } },
    async (req) => {
      await nameFree(req.body.name);
      const id = await ctx.store.clusters.create({
        name: req.body.name,
        bio: req.body.bio,
        config: req.body.config,
        scopes: req.body.scopes,
        isDefault: req.body.is_default,
      });
      return one(id);
    },
  );

  app.patch(
    `${base}/:id`,
    {
      onRequest,
      schema: {
        summary: "Update a scheduler cluster",
        tags: ["clusters"],
        params: IdParams,
        body: UpdateClusterBody,
        response: { 200: ClusterView, ...errors },
      },
    },
    async (req) => {
      await one(req.params.id);
      if (req.body.name) await nameFree(req.body.name, req.params.id);
      if (req.body.is_default === false) throw unprocessable("is_default: make another cluster the default instead");
      // scopes, when sent, replace the cluster's scopes as a whole (as Dragonfly's PATCH does); config merges key by key.
      await ctx.store.clusters.update(req.params.id, {
        name: req.body.name,
        bio: req.body.bio,
        config: req.body.config,
        scopes: req.body.scopes,
        isDefault: req.body.is_default,
      });
      return one(req.params.id);
    },
  );

  app.delete(
    `${base}/:id`,
    { onRequest, schema: { summary: "Delete a scheduler cluster", tags: ["clusters"], params: IdParams, response: { ...errors } } },
    async (req, reply) => {
      const c = await one(req.params.id);
      if (c.is_default) throw conflict(`scheduler cluster ${c.name} is the default cluster and cannot be deleted`);
      await ctx.store.clusters.delete(req.params.id);
      return reply.status(200).send(undefined as never);
    },
  );
}

export function registerClusterRoutes(app: ManagerApp, ctx: RouteContext): void {
  const pat = async (req: FastifyRequest) => {
    req.pat = await ctx.auth.pat(req, "cluster");
  };
  registerClustersApi(app, ctx, { base: `${OPEN_API}/clusters`, onRequest: pat, pagedByDefault: false });
  registerClustersApi(app, ctx, { base: `${CONSOLE_API}/clusters`, onRequest: sessionHook(ctx), pagedByDefault: true });
}
