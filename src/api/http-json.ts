import type { z } from "zod";
import { KilnError, describeNetworkError, type ErrorCode } from "../common/errors.js";
import { ErrorBody } from "./common.js";

export interface JsonRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * One JSON call to another kiln component. The reply is validated against its
 * schema; an error reply becomes a KilnError with the remote message and status.
 */
export async function callJson<S extends z.ZodType>(
  baseUrl: string,
  path: string,
  reply: S,
  req: JsonRequest = {},
): Promise<z.infer<S>> {
  const url = new URL(path, baseUrl);
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  let res: Response;
  try {
    res = await fetch(url, {
      method: req.method ?? (req.body === undefined ? "GET" : "POST"),
      headers: { ...(req.body === undefined ? {} : { "content-type": "application/json" }), ...req.headers },
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      signal: AbortSignal.timeout(req.timeoutMs ?? 30_000),
    });
  } catch (err) {
    throw new KilnError("UNAVAILABLE", `${url.origin} unreachable: ${describeNetworkError(err)}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text.length ? JSON.parse(text) : null;
  } catch {
    throw new KilnError("INTERNAL", `${url.origin}${url.pathname} answered ${res.status} with non-JSON body`);
  }
  if (!res.ok) {
    const parsed = ErrorBody.safeParse(json);
    const message = parsed.success ? parsed.data.message : `HTTP ${res.status}`;
    const code = (parsed.success && parsed.data.code) || (res.status === 404 ? "NOT_FOUND" : res.status < 500 ? "BAD_REQUEST" : "UNAVAILABLE");
    throw new KilnError(code as ErrorCode, message, res.status);
  }
  const parsed = reply.safeParse(json);
  if (!parsed.success) {
    throw new KilnError("INTERNAL", `${url.origin}${url.pathname} answered with an unexpected shape: ${parsed.error.message}`);
  }
  return parsed.data;
}
