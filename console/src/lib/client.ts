/**
 * The console's one way to call the manager: same-origin fetch with the session cookie,
 * the CSRF header on writes, every answer checked against the shared zod schema, and
 * errors that keep the API's own message (split per field for 422 answers).
 */
import type { z } from "zod";
import { ErrorBody } from "@api/common";
import { CSRF_COOKIE, CSRF_HEADER } from "@api/users";
import { parseLinkPages, TOTAL_COUNT_HEADER } from "@api/paging";
import { answered, unreachable } from "./connectivity";
import { sentence } from "./field-message";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** For 422 answers: field path (`args.url`, `name`) → what is wrong with it. */
    readonly fields: Record<string, string> = {},
    /** The manager did not answer (network error, or a gateway in front of it said so). */
    readonly unreachable = false,
  ) {
    super(message);
  }
}

/** Gateways in front of the manager answer these when it is down. */
const GATEWAY_DOWN = new Set([502, 503, 504]);

/** True when the error says the manager did not answer (not that it refused). */
export function isUnreachable(err: unknown): boolean {
  return err instanceof ApiError && err.unreachable;
}

/** Splits `args.url: must be …; args.pieceLength: must be …` (the manager's validation answer) by field. */
export function fieldErrors(message: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of message.split("; ")) {
    const m = /^([A-Za-z_][\w.[\]"-]*): (.+)$/.exec(part);
    if (m) out[m[1]!] = out[m[1]!] ? `${out[m[1]!]}; ${m[2]}` : m[2]!;
  }
  // As sentences, each said once (a field's unit is the form's to apply: sentence(v, "MiB")).
  for (const k of Object.keys(out)) out[k] = sentence(out[k]!);
  return out;
}

const listeners = new Set<() => void>();
/** Called whenever the manager answers 401: the session ended (expired, signed out elsewhere, password changed). */
export function onUnauthorized(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function cookie(name: string): string | undefined {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

export interface CallOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  body?: unknown;
  query?: Record<string, string | number | undefined>;
}

export interface Page<T> {
  items: T[];
  total: number;
  lastPage: number;
}

async function send(path: string, opts: CallOptions): Promise<Response> {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
  const method = opts.method ?? (opts.body === undefined ? "GET" : "POST");
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers[CSRF_HEADER] = cookie(CSRF_COOKIE) ?? "";
  let res: Response;
  try {
    res = await fetch(url, { method, headers, credentials: "same-origin", body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  } catch {
    unreachable();
    throw new ApiError(0, "The manager did not answer: it may be stopped or restarting, or the network is down.", {}, true);
  }
  if (GATEWAY_DOWN.has(res.status) && !res.headers.get("content-type")?.includes("application/json")) {
    unreachable();
    throw new ApiError(res.status, `The manager is unreachable: the gateway in front of it answered ${res.status} ${res.statusText}.`, {}, true);
  }
  answered();
  if (res.ok) return res;
  const text = await res.text();
  let message = `${res.status} ${res.statusText}`;
  try {
    const parsed = ErrorBody.safeParse(JSON.parse(text));
    if (parsed.success) message = parsed.data.message;
  } catch {
    /* not JSON: keep the status line */
  }
  if (res.status === 401 && !path.endsWith("/users/signin")) for (const fn of listeners) fn();
  throw new ApiError(res.status, message, res.status === 422 ? fieldErrors(message) : {});
}

function checked<S extends z.ZodType>(schema: S, json: unknown, path: string): z.infer<S> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new ApiError(0, `${path}: the manager answered with an unexpected shape (${parsed.error.issues[0]?.message ?? "invalid"})`);
  return parsed.data;
}

export async function call<S extends z.ZodType>(schema: S, path: string, opts: CallOptions = {}): Promise<z.infer<S>> {
  const res = await send(path, opts);
  const text = await res.text();
  return checked(schema, text ? JSON.parse(text) : undefined, path);
}

/** A paged list: the items, and from the headers the total and the last page. */
export async function callPage<S extends z.ZodType>(item: S, path: string, query: CallOptions["query"]): Promise<Page<z.infer<S>>> {
  const res = await send(path, { query });
  const items = (await res.json()) as unknown[];
  return {
    items: items.map((x) => checked(item, x, path)),
    total: Number(res.headers.get(TOTAL_COUNT_HEADER) ?? items.length),
    lastPage: parseLinkPages(res.headers.get("link")).last ?? 1,
  };
}
