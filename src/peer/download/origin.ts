/** Back-to-source: one GET to the origin, following redirects, with errors that name the cause. */
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { KilnError, describeNetworkError } from "../../common/errors.js";
import { PEER } from "../../common/defaults.js";
import { isForwardable } from "../../common/headers.js";
import { redact } from "../../common/redact.js";

export interface OriginResponse<B extends Readable = IncomingMessage> {
  body: B;
  /** Total content length, when the origin says. */
  contentLength: number | null;
  /** Byte offset the body starts at (non-zero after a honoured Range request). */
  offset: number;
  /** The URL that finally answered (after redirects). */
  finalUrl: string;
  /** What identifies this version of the content for If-Range: a strong ETag, else Last-Modified. */
  validator: string | null;
}

/** A strong ETag, else Last-Modified (a weak ETag may not be used with If-Range). */
function validatorOf(res: IncomingMessage): string | null {
  const etag = res.headers.etag;
  if (etag && !etag.startsWith("W/")) return etag;
  return res.headers["last-modified"] ?? null;
}

const MAX_REDIRECTS = 10;
const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

function originHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (isForwardable(k.toLowerCase())) out[k.toLowerCase()] = v;
  return out;
}

export async function fetchOrigin(
  url: string,
  headers: Record<string, string>,
  opts: { from?: number; ifRange?: string; signal?: AbortSignal; headersTimeoutMs?: number } = {},
): Promise<OriginResponse> {
  let current = url;
  let sendHeaders = originHeaders(headers);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const range = opts.from ? { range: `bytes=${opts.from}-`, ...(opts.ifRange ? { "if-range": opts.ifRange } : {}) } : {};
    const res = await request(current, { ...sendHeaders, ...range }, opts);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      const next = new URL(res.headers.location, current);
      // Credentials stay with the host they were meant for (a signed storage URL carries its own).
      if (next.host !== new URL(current).host) {
        const { authorization: _dropped, cookie: _cookie, ...rest } = sendHeaders;
        sendHeaders = rest;
      }
      current = next.toString();
      continue;
    }
    if (status === 200 || status === 206) {
      const length = res.headers["content-length"] ? Number(res.headers["content-length"]) : null;
      if (status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers["content-range"] ?? ""));
        if (!m) {
          res.destroy();
          throw new KilnError("ORIGIN_STATUS", `origin answered 206 without a usable Content-Range from ${redact(current)}`, 502);
        }
        return { body: res, contentLength: m[3] === "*" ? null : Number(m[3]), offset: Number(m[1]), finalUrl: current, validator: validatorOf(res) };
      }
      return { body: res, contentLength: length, offset: 0, finalUrl: current, validator: validatorOf(res) };
    }
    res.resume();
    throw new KilnError(
      "ORIGIN_STATUS",
      `${`origin returned ${status} ${res.statusMessage ?? ""}`.trim()} for ${redact(current)}`,
      status >= 400 && status < 600 ? status : 502,
    );
  }
  throw new KilnError("ORIGIN_STATUS", `too many redirects (more than ${MAX_REDIRECTS}) from ${redact(url)}`, 502);
}

function request(url: string, headers: Record<string, string>, opts: { signal?: AbortSignal; headersTimeoutMs?: number }): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return reject(new KilnError("BAD_REQUEST", `invalid origin URL ${redact(url)}`));
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      return reject(new KilnError("BAD_REQUEST", `unsupported origin scheme ${u.protocol}`));
    }
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.request(u, { method: "GET", headers, agent: u.protocol === "https:" ? agents.https : agents.http, signal: opts.signal });
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error("no response headers in time"), { code: "ETIMEDOUT" })),
      opts.headersTimeoutMs ?? PEER.originHeadersTimeoutMs,
    );
    req.once("response", (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.once("error", (err) => {
      clearTimeout(timer);
      reject(new KilnError("ORIGIN_UNREACHABLE", `origin ${u.host} unreachable: ${describeNetworkError(err)}`));
    });
    req.end();
  });
}
