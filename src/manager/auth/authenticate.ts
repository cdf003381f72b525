/** Who is calling: personal access tokens on /oapi/v1, sessions on the console API. */
import type { FastifyRequest } from "fastify";
import type { TokenScope } from "../../api/tokens.js";
import type { Store } from "../store.js";
import type { UserRow } from "../db/schema.js";
import { forbidden, unauthorized } from "../errors.js";
import { csrfTokenFor, hashToken } from "./secrets.js";
import { sameSecret } from "../../common/secret.js";
import { CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE } from "../../api/users.js";
import type {} from "@fastify/cookie";

export const GUEST_READ_ONLY = "guest users are read-only: ask a root user";
import { isPast } from "../time.js";

export interface PatCaller {
  kind: "pat";
  userId: number;
  userName: string;
  tokenId: number;
}

export interface SessionCaller {
  kind: "session";
  user: UserRow;
  tokenHash: string;
  /** How the session token came: a browser's cookie, or a script's Authorization header. */
  via: "cookie" | "bearer";
}

export interface SessionOptions {
  /** Routes a user with a generated first password may call (who am I, change the password). */
  allowPendingPasswordChange?: boolean;
  /** Writes a guest may make too (its own password). */
  allowGuestWrites?: boolean;
}

/** Methods that change nothing: no CSRF token and no write permission needed. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
export const isWrite = (req: FastifyRequest) => !SAFE_METHODS.has(req.method);

declare module "fastify" {
  interface FastifyRequest {
    pat?: PatCaller;
    session?: SessionCaller;
  }
}

/** `Authorization: Bearer <t>` (first header only, as Node keeps it), else `?access_token=`. */
export function credentialOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw unauthorized();
    return m[1];
  }
  const q = req.query as Record<string, unknown> | undefined;
  const fromQuery = q?.access_token;
  if (typeof fromQuery === "string" && fromQuery.length) return fromQuery;
  if (fromQuery !== undefined) throw unauthorized();
  return undefined;
}

export class Authenticator {
  constructor(private readonly store: Store) {}

  async pat(req: FastifyRequest, scope: TokenScope): Promise<PatCaller> {
    const token = credentialOf(req);
    if (!token || token.length > 512) throw unauthorized();
    const row = await this.store.tokens.byHash(hashToken(token));
    if (!row) throw unauthorized();
    if (row.state !== "active") throw forbidden("Token is inactive");
    if (isPast(row.expired_at)) throw forbidden("Token has expired");
    if (!row.scopes.split(",").includes(scope)) throw forbidden(`Token does not have the "${scope}" scope`);
    const user = await this.store.users.byId(row.user_id);
    if (user?.state !== "active") throw forbidden("User is inactive");
    if (isWrite(req) && user.role !== "root") throw forbidden(GUEST_READ_ONLY);
    return { kind: "pat", userId: row.user_id, userName: user.name, tokenId: row.id };
  }

  /**
   * A console session: `Authorization: Bearer` (or `?access_token=`), else the `jwt`
   * cookie. A write authenticated by the cookie must carry the CSRF header; a guest may
   * not write at all.
   */
  async session(req: FastifyRequest, opts: SessionOptions = {}): Promise<SessionCaller> {
    const bearer = credentialOf(req);
    const cookie = bearer === undefined ? req.cookies?.[SESSION_COOKIE] : undefined;
    const token = bearer ?? cookie;
    if (!token || token.length > 512) throw unauthorized();
    const tokenHash = hashToken(token);
    const found = await this.store.users.sessionUser(tokenHash);
    if (!found || isPast(found.expiresAt)) throw unauthorized();
    if (found.user.state !== "active") throw forbidden("User is inactive");
    if (cookie !== undefined && isWrite(req) && !sameSecret(req.headers[CSRF_HEADER], csrfTokenFor(token))) {
      throw forbidden(`a write signed in by cookie must send the ${CSRF_HEADER} header (the value of the ${CSRF_COOKIE} cookie)`);
    }
    if (found.user.must_change_password && !opts.allowPendingPasswordChange) {
      throw forbidden(`Password must be changed first: POST /api/v1/users/${found.user.id}/reset_password`);
    }
    if (isWrite(req) && found.user.role !== "root" && !opts.allowGuestWrites) throw forbidden(GUEST_READ_ONLY);
    return { kind: "session", user: found.user, tokenHash, via: cookie !== undefined ? "cookie" : "bearer" };
  }
}
