/**
 * The proxy's direct paths: forwarding one HTTP request to its origin as it is
 * (any method, bodies streamed both ways), and tunnelling a CONNECT.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import net from "node:net";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError, describeNetworkError } from "../../common/errors.js";
import { PEER } from "../../common/defaults.js";
import type { Logger } from "../../common/logger.js";
import { isForwardable } from "../../common/headers.js";
import { redact } from "../../common/redact.js";

/** Response headers that describe the upstream hop only. */
const RESPONSE_HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-authenticate", "proxy-connection", "trailer", "upgrade"]);
const upstreamAgents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/**
 * The client's end-to-end request headers: what may reach the origin. `range` is
 * kept when the origin answers this very request (forwarding), and dropped for a
 * P2P download, which fetches whole pieces and slices them itself.
 */
export function endToEndHeaders(req: IncomingMessage, opts: { range: boolean }): Record<string, string> {
  // Headers the client listed in Connection are hop-by-hop too (RFC 9110 7.6.1).
  const listed = new Set(
    String(req.headers.connection ?? "")
      .toLowerCase()
      .split(",")
      .map((s) => s.trim()),
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || listed.has(k) || !(isForwardable(k) || (opts.range && k === "range"))) continue;
    headers[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return headers;
}

/** Sends `req` to `url` and its answer (status, headers, body: a 401 challenge too) back to `res`. */
export async function forwardRequest(req: IncomingMessage, res: ServerResponse, url: URL, log: Logger): Promise<void> {
  let answer: IncomingMessage;
  try {
    answer = await requestOrigin(req, url);
  } catch (err) {
    if (res.headersSent) return void res.destroy();
    throw err;
  }
  await relayAnswer(answer, res, url, log);
}

/**
 * Sends `req` (method, end-to-end headers, body) to `url`; resolves with the origin's
 * answer once its headers are in, rejects with ORIGIN_UNREACHABLE (502) when there is
 * none, or the connection idles for `timeoutMs` (before the headers or in the body).
 */
export function requestOrigin(req: IncomingMessage, url: URL, timeoutMs: number = PEER.originHeadersTimeoutMs): Promise<IncomingMessage> {
  const secure = url.protocol === "https:";
  return new Promise<IncomingMessage>((resolve, reject) => {
    const up = (secure ? https : http).request(
      url,
      { method: req.method, headers: endToEndHeaders(req, { range: true }), agent: secure ? upstreamAgents.https : upstreamAgents.http },
      resolve,
    );
    up.setTimeout(timeoutMs, () => up.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
    up.on("error", (err) => reject(new KilnError("ORIGIN_UNREACHABLE", `${url.origin} unreachable: ${describeNetworkError(err)}`, 502)));
    // A request body (a push through the proxy, a POST) streams straight through;
    // a client that goes away mid-body does not leave the upstream request hanging.
    req.pipe(up);
    req.on("close", () => {
      if (!req.complete) up.destroy();
    });
  });
}

/** The origin's answer (status, end-to-end headers, body) to the client. */
export function relayAnswer(answer: IncomingMessage, res: ServerResponse, url: URL, log: Logger): Promise<void> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && !RESPONSE_HOP_BY_HOP.has(k)) out[k] = v;
  res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
  return pipeline(answer, res).catch((err: Error) => {
    log.warn({ url: redact(url.toString()), err: err.message }, "forwarding failed mid-stream");
    res.destroy();
  });
}

/** Writes a complete HTTP/1.1 error answer (the JSON every kiln port answers with) on a raw CONNECT socket and closes it. */
export function rejectConnect(socket: Duplex, err: unknown): void {
  const e = err instanceof KilnError ? err : new KilnError("INTERNAL", "internal error");
  const body = JSON.stringify({ message: e.message, code: e.code });
  const reason = http.STATUS_CODES[e.status] ?? "Error";
  socket.end(
    `HTTP/1.1 ${e.status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Tunnels a CONNECT as is: the bytes inside (TLS) are the client's and the origin's business. */
export function tunnel(socket: Duplex, head: Buffer, hostname: string, port: number, log: Logger): void {
  const upstream = net.connect({ host: hostname, port });
  let connected = false;
  const timer = setTimeout(() => upstream.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), PEER.originHeadersTimeoutMs);
  upstream.once("connect", () => {
    clearTimeout(timer);
    connected = true;
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on("error", (err) => {
    clearTimeout(timer);
    if (!connected) {
      log.warn({ target: `${hostname}:${port}`, err: err.message }, "CONNECT target unreachable");
      return rejectConnect(socket, new KilnError("ORIGIN_UNREACHABLE", `${hostname}:${port} unreachable: ${describeNetworkError(err)}`));
    }
    socket.destroy();
  });
  socket.on("error", () => upstream.destroy());
  socket.on("close", () => upstream.destroy());
  upstream.on("close", () => socket.destroy());
}
