/** Console sessions over HTTP: the onRequest hook that authenticates, and the cookies sign-in sets. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { CSRF_COOKIE, SESSION_COOKIE } from "../../api/users.js";
import type { SessionOptions } from "../auth/authenticate.js";
import { csrfTokenFor } from "../auth/secrets.js";
import type { RouteContext } from "./context.js";

/** An onRequest hook: the caller must be signed in (cookie or Bearer); see Authenticator.session. */
export function sessionHook(ctx: RouteContext, opts: SessionOptions = {}) {
  return async (req: FastifyRequest) => {
    req.session = await ctx.auth.session(req, opts);
  };
}

/** Behind a TLS-terminating proxy the request arrives as plain HTTP; the proxy says so in X-Forwarded-Proto. */
function overTls(req: FastifyRequest): boolean {
  if ((req.raw.socket as { encrypted?: boolean }).encrypted) return true;
  const proto = req.headers["x-forwarded-proto"];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(",")[0]?.trim().toLowerCase();
  return first === "https";
}

/**
 * `jwt`: the session token, HttpOnly (page scripts never see it). `csrf_token`: what the
 * page must echo in X-CSRF-Token on writes, readable by the page. Both SameSite=Strict,
 * Secure when the request came over TLS.
 */
export function setSessionCookies(req: FastifyRequest, reply: FastifyReply, token: string, expiresAt: Date): void {
  const common = { path: "/", sameSite: "strict" as const, secure: overTls(req), expires: expiresAt };
  reply.setCookie(SESSION_COOKIE, token, { ...common, httpOnly: true });
  reply.setCookie(CSRF_COOKIE, csrfTokenFor(token), { ...common, httpOnly: false });
}

export function clearSessionCookies(req: FastifyRequest, reply: FastifyReply): void {
  const common = { path: "/", sameSite: "strict" as const, secure: overTls(req) };
  reply.clearCookie(SESSION_COOKIE, { ...common, httpOnly: true });
  reply.clearCookie(CSRF_COOKIE, common);
}
