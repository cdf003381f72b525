/** How the manager answers errors: always `{"message": ...}` and a status that says what went wrong. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { KilnError } from "../../common/errors.js";
import { ErrorBody } from "../../api/common.js";

/** OpenAPI response schemas for the error statuses a route may answer. */
export function errorResponses<S extends number>(...statuses: S[]): Record<`${S}`, typeof ErrorBody> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody])) as Record<`${S}`, typeof ErrorBody>;
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

/** A path segment as JS would write it: `.name`, `.0`, or `["odd key"]`. */
function segment(s: string, first: boolean): string {
  if (/^[A-Za-z_][\w-]*$/.test(s) || /^\d+$/.test(s)) return first ? s : `.${s}`;
  return `[${JSON.stringify(s)}]`;
}

/** `/args/pieceLength` → `args.pieceLength`; `/args/headers/a b` → `args.headers["a b"]`; `/` → the context (body, querystring…). */
export function describeIssues(context: string, issues: readonly ValidationIssue[]): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const i of issues) {
    const path = (i.instancePath ?? "")
      .split("/")
      .slice(1)
      .filter((s, n, all) => s !== "" || n < all.length - 1)
      .map((s, n) => segment(s, n === 0))
      .join("");
    const line = `${path || context}: ${i.message ?? "invalid"}`;
    if (!seen.has(line)) parts.push(line);
    seen.add(line);
  }
  return parts.join("; ") || `${context}: invalid`;
}

export function managerErrorHandler(err: FastifyError | KilnError, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof KilnError) {
    if (err.status >= 500) req.log.warn({ err }, "request failed");
    if (err.retryAfterSeconds !== undefined) reply.header("retry-after", String(err.retryAfterSeconds));
    return reply.status(err.status).send({ message: err.message });
  }
  const fe = err as FastifyError;
  if (fe.validation) {
    const context = fe.validationContext ?? "request";
    // A body that parses but fails validation is 422 (Dragonfly clients expect it); bad query/params are 400.
    const status = context === "body" ? 422 : 400;
    return reply.status(status).send({ message: describeIssues(context, fe.validation) });
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return reply.status(fe.statusCode).send({ message: fe.message });
  req.log.error({ err }, "unhandled error");
  return reply.status(500).send({ message: "internal error" });
}
