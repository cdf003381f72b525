/** Console users (/api/v1/users): sign-in and sign-out, who am I, passwords, users and their roles. */
import { z } from "zod";
import type { FastifyRequest } from "fastify";
import {
  CreateUserBody,
  ListUsersQuery,
  ResetPasswordBody,
  Role,
  RoleParams,
  SESSION_COOKIE,
  SignInBody,
  SignInReply,
  UpdateUserBody,
  UserView,
} from "../../api/users.js";
import { IdParams } from "../../api/fields.js";
import { MANAGER_PATHS } from "../../api/manager-paths.js";
import { errorResponses } from "./errors.js";
import { TOKEN_PREFIX, MANAGER } from "../defaults.js";
import { hashPassword, hashToken, randomToken, verifyPassword } from "../auth/secrets.js";
import { credentialOf } from "../auth/authenticate.js";
import type { UserRow } from "../db/schema.js";
import { showTime } from "../time.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { conflict, forbidden, notFound, tooManyRequests, unauthorized, unprocessable } from "../errors.js";
import { SignInLimiter } from "../auth/signin-limiter.js";
import { clearSessionCookies, sessionHook, setSessionCookies } from "./session.js";
import { pageHeaders } from "./paging.js";

const errors = errorResponses(400, 401, 403, 404, 409, 422, 429);
const Empty = z.undefined();

export function userView(u: UserRow): UserView {
  return {
    id: u.id,
    created_at: showTime(u.created_at),
    updated_at: showTime(u.updated_at),
    name: u.name,
    email: u.email,
    state: u.state,
    must_change_password: u.must_change_password === 1,
    role: roleOf(u),
  };
}

export const roleOf = (u: UserRow): Role => (u.role === "root" ? "root" : "guest");

export function registerUserRoutes(app: ManagerApp, ctx: RouteContext): void {
  const signedIn = sessionHook(ctx);
  const pending = sessionHook(ctx, { allowPendingPasswordChange: true, allowGuestWrites: true });
  const user = async (id: number) => {
    const u = await ctx.store.users.byId(id);
    if (!u) throw notFound(`user ${id} not found`);
    return u;
  };
  /** Root may be taken from a user, or the user disabled, only while another active root remains. */
  const keepARoot = async (u: UserRow, what: string) => {
    if (roleOf(u) === "root" && u.state === "active" && (await ctx.store.users.activeRoots()) <= 1) {
      throw conflict(`${u.name} is the last active root user; ${what} would leave nobody able to change anything`);
    }
  };

  const limiter = ctx.signInLimiter ?? new SignInLimiter({ maxFailures: MANAGER.signInMaxFailures, windowMs: MANAGER.signInWindowMs });
  app.post(MANAGER_PATHS.signin, { schema: { tags: ["users"], body: SignInBody, response: { 200: SignInReply, ...errors } } }, async (req, reply) => {
    const { name } = req.body;
    const wait = await limiter.retryAfterSeconds(name, req.ip);
    if (wait > 0) throw tooManyRequests(`too many failed sign-ins for ${name} from this address; try again in ${wait} s`, wait);
    const found = await ctx.store.users.byName(name);
    // Same answer for an unknown user and a wrong password.
    if (!found || !(await verifyPassword(req.body.password, found.password_hash))) {
      await limiter.failed(name, req.ip);
      throw unauthorized();
    }
    await limiter.succeeded(name, req.ip);
    if (found.state !== "active") throw forbidden("User is inactive");
    const token = randomToken(TOKEN_PREFIX.session);
    const expiresAt = new Date(Date.now() + ctx.sessionTtlMs);
    await ctx.store.users.createSession(found.id, hashToken(token), expiresAt.toISOString());
    void ctx.store.users.dropExpiredSessions().catch(() => undefined);
    setSessionCookies(req, reply, token, expiresAt);
    return { token, expire: showTime(expiresAt.toISOString()) };
  });

  // Ends the session it is called with (Bearer or cookie), if any, and clears the cookies either way.
  app.post(MANAGER_PATHS.signout, { schema: { tags: ["users"], response: { 200: Empty, ...errors } } }, async (req: FastifyRequest, reply) => {
    let token: string | undefined;
    try {
      token = credentialOf(req) ?? req.cookies[SESSION_COOKIE];
    } catch {
      token = undefined; // a malformed Authorization header: nothing to end
    }
    if (token && token.length <= 512) await ctx.store.users.dropSession(hashToken(token));
    clearSessionCookies(req, reply);
    return reply.status(200).send();
  });

  app.get(MANAGER_PATHS.me, { onRequest: pending, schema: { tags: ["users"], response: { 200: UserView, ...errors } } }, async (req) =>
    userView(req.session!.user),
  );

  app.post(
    `${MANAGER_PATHS.users}/:id/reset_password`,
    { onRequest: pending, schema: { tags: ["users"], params: IdParams, body: ResetPasswordBody, response: { 200: UserView, ...errors } } },
    async (req) => {
      const me = req.session!.user;
      const self = me.id === req.params.id;
      if (!self && roleOf(me) !== "root") throw forbidden("you may change only your own password");
      if (!self && me.must_change_password) throw forbidden(`Password must be changed first: POST /api/v1/users/${me.id}/reset_password`);
      const target = self ? me : await user(req.params.id);
      if (self && !(await verifyPassword(req.body.old_password, target.password_hash))) throw forbidden("old_password is wrong");
      if (req.body.new_password === req.body.old_password) throw unprocessable("new_password: must differ from old_password");
      // A password root sets for someone else is a first password: its user must replace it.
      await ctx.store.users.setPassword(target.id, await hashPassword(req.body.new_password), !self);
      await ctx.store.users.dropSessions(target.id, self ? req.session!.tokenHash : undefined);
      return userView(await user(target.id));
    },
  );

  app.get(
    MANAGER_PATHS.users,
    { onRequest: signedIn, schema: { tags: ["users"], querystring: ListUsersQuery, response: { 200: z.array(UserView), ...errors } } },
    async (req, reply) => {
      const { rows, total } = await ctx.store.users.list({ page: req.query.page, perPage: req.query.per_page, name: req.query.name });
      pageHeaders(req, reply, req.query, total);
      return rows.map(userView);
    },
  );

  app.get(
    `${MANAGER_PATHS.users}/:id`,
    { onRequest: signedIn, schema: { tags: ["users"], params: IdParams, response: { 200: UserView, ...errors } } },
    async (req) => userView(await user(req.params.id)),
  );

  app.post(
    MANAGER_PATHS.users,
    { onRequest: signedIn, schema: { tags: ["users"], body: CreateUserBody, response: { 200: UserView, ...errors } } },
    async (req) => {
      const b = req.body;
      if (await ctx.store.users.byName(b.name)) throw conflict(`a user named ${b.name} already exists`);
      const id = await ctx.store.users.create({
        name: b.name,
        email: b.email ?? "",
        passwordHash: await hashPassword(b.password),
        mustChangePassword: true,
        role: b.role ?? "guest",
      });
      ctx.log.info({ user: b.name, role: b.role ?? "guest", by: req.session!.user.name }, "user created");
      return userView(await user(id));
    },
  );

  app.patch(
    `${MANAGER_PATHS.users}/:id`,
    { onRequest: signedIn, schema: { tags: ["users"], params: IdParams, body: UpdateUserBody, response: { 200: UserView, ...errors } } },
    async (req) => {
      const target = await user(req.params.id);
      if (req.body.state === "inactive" && target.state === "active") await keepARoot(target, "disabling them");
      await ctx.store.users.update(target.id, req.body);
      // A disabled user's sessions end now; their tokens are refused while they are inactive.
      if (req.body.state === "inactive") await ctx.store.users.dropSessions(target.id);
      return userView(await user(target.id));
    },
  );

  app.get(
    `${MANAGER_PATHS.users}/:id/roles`,
    { onRequest: signedIn, schema: { tags: ["users"], params: IdParams, response: { 200: z.array(Role), ...errors } } },
    async (req) => [roleOf(await user(req.params.id))],
  );

  // A user has one role: putting one replaces the other.
  app.put(
    `${MANAGER_PATHS.users}/:id/roles/:role`,
    { onRequest: signedIn, schema: { tags: ["users"], params: RoleParams, response: { 200: UserView, ...errors } } },
    async (req) => {
      const target = await user(req.params.id);
      if (req.params.role === "guest") await keepARoot(target, "making them a guest");
      await ctx.store.users.update(target.id, { role: req.params.role });
      return userView(await user(target.id));
    },
  );

  // Every user is at least a guest: removing root leaves guest; guest cannot be removed.
  app.delete(
    `${MANAGER_PATHS.users}/:id/roles/:role`,
    { onRequest: signedIn, schema: { tags: ["users"], params: RoleParams, response: { 200: UserView, ...errors } } },
    async (req) => {
      const target = await user(req.params.id);
      if (req.params.role === "guest") throw unprocessable("role: every user has the guest role; give another user root instead");
      if (roleOf(target) === "root") {
        await keepARoot(target, "taking root from them");
        await ctx.store.users.update(target.id, { role: "guest" });
      }
      return userView(await user(target.id));
    },
  );
}
