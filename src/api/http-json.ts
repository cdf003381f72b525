import http from "node:http";
import https from "node:https";
import type { z } from "zod";
import { KilnError, describeNetworkError, isErrorCode, type ErrorCode } from "../common/errors.js";
import { ErrorBody } from "./common.js";
import { seconds } from "../common/format-seconds.js";

/**
 * Components call each other often (every peer polls its scheduler): node:http on
 * kept-alive connections costs a fraction of what `fetch` does per call.
 */
const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

export interface JsonRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  /** The whole answer must arrive within this (default 30 s). */
  timeoutMs?: number;
  /** The connection must be accepted within this (default: timeoutMs). */
  connectTimeoutMs?: number;
}

/**
 * One JSON call to another kiln component. The reply is validated against its
 * schema; an error reply becomes a KilnError with the remote message and status.
 */
export async function callJson<S extends z.ZodType>(baseUrl: string, path: string, reply: S, req: JsonRequest = {}): Promise<z.infer<S>> {
  const url = new URL(path, baseUrl);
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const method = req.method ?? (req.body === undefined ? "GET" : "POST");
  const body = req.body === undefined ? undefined : JSON.stringify(req.body);
  const headers = { ...(body === undefined ? {} : { "content-type": "application/json" }), ...req.headers };
  let res: { status: number; text: string };
  try {
    res = await send(url, method, headers, body, req.timeoutMs ?? 30_000, req.connectTimeoutMs);
  } catch (err) {
    throw new KilnError("UNAVAILABLE", `${url.origin} unreachable: ${describeNetworkError(err)}`, undefined, undefined, { cause: err });
  }
  const text = res.text;
  let json: unknown;
  try {
    json = text.length ? JSON.parse(text) : null;
  } catch {
    throw new KilnError("INTERNAL", `${url.origin}${url.pathname} answered ${res.status} with non-JSON body`);
  }
  if (res.status < 200 || res.status > 299) {
    const parsed = ErrorBody.safeParse(json);
    const message = parsed.success ? parsed.data.message : `HTTP ${res.status}`;
    const remote = parsed.success ? parsed.data.code : undefined;
    const code: ErrorCode = isErrorCode(remote) ? remote : res.status === 404 ? "NOT_FOUND" : res.status < 500 ? "BAD_REQUEST" : "UNAVAILABLE";
    throw new KilnError(code, message, res.status);
  }
  const parsed = reply.safeParse(json);
  if (!parsed.success) {
    throw new KilnError("INTERNAL", `${url.origin}${url.pathname} answered with an unexpected shape: ${parsed.error.message}`);
  }
  return parsed.data;
}

/** A wait as a message says it: "5 s", "1.5 s". */

/**
 * One request; resolves with the status and the whole body, or rejects when the
 * connection is not accepted within `connectTimeoutMs` or the answer takes longer than
 * `timeoutMs` in all, saying which of the two did not happen.
 */
function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
  connectTimeoutMs = timeoutMs,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const tls = url.protocol === "https:";
    const req = (tls ? https : http).request(url, { method, headers, agent: tls ? agents.https : agents.http }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () => {
        clearTimeout(timer);
        clearTimeout(connectTimer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
      res.once("error", fail);
    });
    const fail = (err: Error) => {
      clearTimeout(timer);
      clearTimeout(connectTimer);
      reject(err);
    };
    let connected = false;
    let connectTimer: NodeJS.Timeout | undefined;
    req.once("socket", (socket) => {
      if (!socket.connecting) {
        connected = true;
        return;
      }
      connectTimer = setTimeout(
        () => req.destroy(Object.assign(new Error(`did not accept the connection within ${seconds(connectTimeoutMs)}`), { code: "KILN_CONNECT_TIMEOUT" })),
        connectTimeoutMs,
      );
      socket.once("connect", () => {
        connected = true;
        clearTimeout(connectTimer);
      });
    });
    const timer = setTimeout(() => {
      const what = connected
        ? `accepted the connection but sent no answer within ${seconds(timeoutMs)}`
        : `did not accept the connection within ${seconds(timeoutMs)}`;
      req.destroy(Object.assign(new Error(what), { code: connected ? "KILN_ANSWER_TIMEOUT" : "KILN_CONNECT_TIMEOUT" }));
    }, timeoutMs);
    req.once("error", fail);
    req.end(body);
  });
}
