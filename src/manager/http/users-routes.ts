/** Console sign-in, password change, and personal access tokens (/api/v1). */
import { z } from "zod";
import {
  CONSOLE_API,
  CreateTokenBody,
  IdParams,
  MANAGER_PATHS,
  ResetPasswordBody,
  SignInBody,
  SignInReply,
  TokenScope,
  TokenView,
  UpdateTokenBody,
  UserView,
} from "../../api/manager.js";
import { errorResponses } from "./errors.js";
import { TOKEN_PREFIX, MANAGER } from "../defaults.js";
import { hashPassword, hashToken, randomToken, verifyPassword } from "../auth/secrets.js";
import type { TokenRow, UserRow } from "../db/schema.js";
import { nowIso, showTime } from "../time.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { forbidden, notFound, tooManyRequests, unauthorized, unprocessable } from "../errors.js";
import { SignInLimiter } from "../auth/signin-limiter.js";

const errors = errorResponses(400, 401, 403, 404, 422, 429);

function userView(u: UserRow) {
  return {
    id: u.id,
    created_at: showTime(u.created_at),
    updated_at: showTime(u.updated_at),
    name: u.name,
    email: u.email,
    state: u.state,
    must_change_password: u.must_change_password === 1,
  };
}

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

export function registerUserRoutes(app: ManagerApp, ctx: RouteContext): void {
  const signedIn = async (req: Parameters<typeof ctx.auth.session>[0]) => {
    req.session = await ctx.auth.session(req);
  };
  const signedInPending = async (req: Parameters<typeof ctx.auth.session>[0]) => {
    req.session = await ctx.auth.session(req, { allowPendingPasswordChange: true });
  };
  const isRoot = (u: UserRow) => u.name === MANAGER.rootUser;
  const ownToken = async (user: UserRow, id: number) => {
    const t = await ctx.store.tokens.byId(id);
    if (!t || (t.user_id !== user.id && !isRoot(user))) throw notFound(`personal access token ${id} not found`);
    return t;
  };

  const limiter = ctx.signInLimiter ?? new SignInLimiter({ maxFailures: MANAGER.signInMaxFailures, windowMs: MANAGER.signInWindowMs });
  app.post(MANAGER_PATHS.signin, { schema: { tags: ["users"], body: SignInBody, response: { 200: SignInReply, ...errors } } }, async (req) => {
    const { name } = req.body;
    const wait = await limiter.retryAfterSeconds(name, req.ip);
    if (wait > 0) throw tooManyRequests(`too many failed sign-ins for ${name} from this address; try again in ${wait} s`, wait);
    const user = await ctx.store.users.byName(name);
    // Same answer for an unknown user and a wrong password.
    if (!user || !(await verifyPassword(req.body.password, user.password_hash))) {
      await limiter.failed(name, req.ip);
      throw unauthorized();
    }
    await limiter.succeeded(name, req.ip);
    if (user.state !== "active") throw forbidden("User is inactive");
    const token = randomToken(TOKEN_PREFIX.session);
    const expiresAt = nowIso(Date.now() + MANAGER.sessionTtlMs);
    await ctx.store.users.createSession(user.id, hashToken(token), expiresAt);
    void ctx.store.users.dropExpiredSessions().catch(() => undefined);
    return { token, expires_at: showTime(expiresAt), user_id: user.id, must_change_password: user.must_change_password === 1 };
  });

  app.get(MANAGER_PATHS.me, { onRequest: signedInPending, schema: { tags: ["users"], response: { 200: UserView, ...errors } } }, async (req) =>
    userView(req.session!.user),
  );

  app.post(
    `${CONSOLE_API}/users/:id/reset_password`,
    { onRequest: signedInPending, schema: { tags: ["users"], params: IdParams, body: ResetPasswordBody, response: { 200: UserView, ...errors } } },
    async (req) => {
      const me = req.session!.user;
      if (me.id !== req.params.id && !isRoot(me)) throw forbidden("you may change only your own password");
      const target = me.id === req.params.id ? me : await ctx.store.users.byId(req.params.id);
      if (!target) throw notFound(`user ${req.params.id} not found`);
      if (me.id === target.id && !(await verifyPassword(req.body.old_password, target.password_hash))) {
        throw forbidden("old_password is wrong");
      }
      if (req.body.new_password === req.body.old_password) throw unprocessable("new_password: must differ from old_password");
      await ctx.store.users.setPassword(target.id, await hashPassword(req.body.new_password));
      await ctx.store.users.dropSessions(target.id, me.id === target.id ? req.session!.tokenHash : undefined);
      return userView((await ctx.store.users.byId(target.id))!);
    },
  );

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

  app.get(MANAGER_PATHS.tokens, { onRequest: signedIn, schema: { tags: ["tokens"], response: { 200: z.array(TokenView), ...errors } } }, async (req) => {
    const me = req.session!.user;
    return (await ctx.store.tokens.list(isRoot(me) ? undefined : me.id)).map((t) => tokenView(t));
  });

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
