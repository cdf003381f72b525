/** Personal access tokens (/api/v1/personal-access-tokens): shown once, stored hashed; each user sees their own, root sees all. */
import { z } from "zod";
import { CreateTokenBody, TokenScope, TokenView, UpdateTokenBody } from "../../api/tokens.js";
import { IdParams } from "../../api/fields.js";
import { MANAGER_PATHS } from "../../api/manager-paths.js";
import { PageQuery } from "../../api/paging.js";
import { errorResponses } from "./errors.js";
import { TOKEN_PREFIX, MANAGER } from "../defaults.js";
import { hashToken, randomToken } from "../auth/secrets.js";
import type { TokenRow, UserRow } from "../db/schema.js";
import { nowIso, showTime } from "../time.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { notFound, unprocessable } from "../errors.js";
import { sessionHook } from "./session.js";
import { pageHeaders } from "./paging.js";
import { roleOf } from "./users-routes.js";

const errors = errorResponses(400, 401, 403, 404, 422, 429);

function tokenView(t: TokenRow, token?: string): TokenView {
  return {
    id: t.id,
    created_at: showTime(t.created_at),
    updated_at: showTime(t.updated_at),
    name: t.name,
    bio: t.bio,
    scopes: t.scopes.split(",").filter((s): s is TokenScope => TokenScope.safeParse(s).success),
    state: t.state === "active" ? "active" : "inactive",
    expired_at: showTime(t.expired_at),
    user_id: t.user_id,
    ...(token ? { token } : {}),
  };
}

export function registerTokenRoutes(app: ManagerApp, ctx: RouteContext): void {
  const signedIn = sessionHook(ctx);
  const ownToken = async (user: UserRow, id: number) => {
    const t = await ctx.store.tokens.byId(id);
    if (!t || (t.user_id !== user.id && roleOf(user) !== "root")) throw notFound(`personal access token ${id} not found`);
    return t;
  };

  app.post(
    MANAGER_PATHS.tokens,
    { onRequest: signedIn, schema: { tags: ["tokens"], body: CreateTokenBody, response: { 200: TokenView, ...errors } } },
    async (req) => {
      const b = req.body;
      const expiredAt = b.expired_at ? new Date(b.expired_at).toISOString() : nowIso(Date.now() + MANAGER.tokenTtlMs);
      if (Date.parse(expiredAt) <= Date.now()) throw unprocessable("expired_at: must be in the future");
      const token = randomToken(TOKEN_PREFIX.pat);
      const id = await ctx.store.tokens.create({
        name: b.name,
        bio: b.bio ?? "",
        tokenHash: hashToken(token),
        scopes: [...new Set(b.scopes)],
        expiredAt,
        userId: req.session!.user.id,
      });
      ctx.log.info({ token_id: id, scopes: b.scopes, user: req.session!.user.name }, "personal access token created");
      return tokenView((await ctx.store.tokens.byId(id))!, token);
    },
  );

  app.get(
    MANAGER_PATHS.tokens,
    { onRequest: signedIn, schema: { tags: ["tokens"], querystring: PageQuery, response: { 200: z.array(TokenView), ...errors } } },
    async (req, reply) => {
      const me = req.session!.user;
      const { rows, total } = await ctx.store.tokens.list({
        userId: roleOf(me) === "root" ? undefined : me.id,
        page: req.query.page,
        perPage: req.query.per_page,
      });
      pageHeaders(req, reply, req.query, total);
      return rows.map((t) => tokenView(t));
    },
  );

  app.get(
    `${MANAGER_PATHS.tokens}/:id`,
    { onRequest: signedIn, schema: { tags: ["tokens"], params: IdParams, response: { 200: TokenView, ...errors } } },
    async (req) => tokenView(await ownToken(req.session!.user, req.params.id)),
  );

  app.patch(
    `${MANAGER_PATHS.tokens}/:id`,
    { onRequest: signedIn, schema: { tags: ["tokens"], params: IdParams, body: UpdateTokenBody, response: { 200: TokenView, ...errors } } },
    async (req) => {
      await ownToken(req.session!.user, req.params.id);
      const b = req.body;
      await ctx.store.tokens.update(req.params.id, {
        ...(b.name !== undefined ? { name: b.name } : {}),
        ...(b.bio !== undefined ? { bio: b.bio } : {}),
        ...(b.state !== undefined ? { state: b.state } : {}),
        ...(b.expired_at !== undefined ? { expired_at: new Date(b.expired_at).toISOString() } : {}),
      });
      return tokenView((await ctx.store.tokens.byId(req.params.id))!);
    },
  );

  app.delete(
    `${MANAGER_PATHS.tokens}/:id`,
    { onRequest: signedIn, schema: { tags: ["tokens"], params: IdParams, response: { ...errors } } },
    async (req, reply) => {
      await ownToken(req.session!.user, req.params.id);
      await ctx.store.tokens.delete(req.params.id);
      return reply.status(200).send(undefined as never);
    },
  );
}
