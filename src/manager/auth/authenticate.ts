/** Who is calling: personal access tokens on /oapi/v1, sessions on the console API. */
import type { FastifyRequest } from "fastify";
import type { TokenScope } from "../../api/manager.js";
import type { Store } from "../store.js";
import type { UserRow } from "../db/schema.js";
import { forbidden, unauthorized } from "../errors.js";
import { hashToken } from "./secrets.js";
import { isPast } from "../time.js";

export interface PatCaller {
  kind: "pat";
  userId: number;
  tokenId: number;
}

export interface SessionCaller {
  kind: "session";
  user: UserRow;
  tokenHash: string;
}

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
    if (!user || user.state !== "active") throw forbidden("User is inactive");
    return { kind: "pat", userId: row.user_id, tokenId: row.id };
  }

  async session(req: FastifyRequest, opts: { allowPendingPasswordChange?: boolean } = {}): Promise<SessionCaller> {
    const token = credentialOf(req);
    if (!token || token.length > 512) throw unauthorized();
    const tokenHash = hashToken(token);
    const found = await this.store.users.sessionUser(tokenHash);
    if (!found || isPast(found.expiresAt)) throw unauthorized();
    if (found.user.state !== "active") throw forbidden("User is inactive");
    if (found.user.must_change_password && !opts.allowPendingPasswordChange) {
      throw forbidden(`Password must be changed first: POST /api/v1/users/${found.user.id}/reset_password`);
    }
    return { kind: "session", user: found.user, tokenHash };
  }
}
