/** `kiln get`'s requests to the local peer's proxy. */
import http from "node:http";
import { describeNetworkError } from "../common/errors.js";
import { seconds } from "../common/format-seconds.js";
import type { ErrorBody } from "../api/common.js";
import { DRAGONFLY_HEADERS, KILN_PROXY_HEADERS, LOCAL_COPY_CONTENT_TYPE } from "../api/proxy.js";

/** How long `kiln get` waits for its peer: to accept the connection, then to answer (the body then takes as long as the download). */
export interface PeerTimeouts {
  connectMs: number;
  answerMs: number;
}

/** Asks the peer at `peer` for `url` (a forward-proxy request); resolves with its answer, whatever the status. */
export function requestFromPeer(peer: URL, url: string, headers: Record<string, string>, timeouts: PeerTimeouts): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new Error(`the kiln peer at ${peer.origin} ${why}`));
    // No agent: the connection is this request's own; closing it is how a local copy lets go of the task.
    const req = http.request({ host: peer.hostname, port: peer.port || 80, method: "GET", path: url, headers, agent: false }, (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    let timer = setTimeout(() => {
      fail(`did not accept the connection within ${seconds(timeouts.connectMs)}`);
      req.destroy();
    }, timeouts.connectMs);
    req.once("socket", (socket) =>
      socket.once("connect", () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          fail(`accepted the connection but sent no answer within ${seconds(timeouts.answerMs)} (--request-timeout sets how long to wait)`);
          req.destroy();
        }, timeouts.answerMs);
      }),
    );
    req.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach the kiln peer at ${peer.origin}: ${describeNetworkError(err)}; is \`kiln peer\` or \`kiln up\` running?`));
    });
    req.end();
  });
}

/** Throws the peer's message unless it answered 200. */
export async function assertOk(res: http.IncomingMessage): Promise<void> {
  if (res.statusCode === 200) return;
  let body = "";
  for await (const c of res) body += c;
  const message = errorMessageOf(body) ?? `HTTP ${res.statusCode}`;
  // The peer's message usually names the status already ("origin returned 404 …").
  throw new Error(message.includes(String(res.statusCode)) ? message : `${message} (status ${res.statusCode})`);
}

/**
 * The `message` of an ErrorBody answer, checked by hand: the schema's module brings the
 * full zod, whose loading was most of `kiln get`'s CPU.
 */
function errorMessageOf(body: string): ErrorBody["message"] | undefined {
  try {
    const value: unknown = JSON.parse(body);
    const message = typeof value === "object" && value !== null ? (value as Record<string, unknown>).message : undefined;
    return typeof message === "string" ? message : undefined;
  } catch {
    return undefined;
  }
}

/** The content length the peer announced (with trailers it is sent in its own header), if any. */
export function announcedLength(res: http.IncomingMessage): number | undefined {
  const n = Number(res.headers[KILN_PROXY_HEADERS.contentLength] ?? res.headers["content-length"] ?? NaN);
  return Number.isFinite(n) ? n : undefined;
}

export function taskIdOf(res: http.IncomingMessage): string {
  return String(res.headers[DRAGONFLY_HEADERS.taskId] ?? "");
}

/** Whether the peer answered a local-copy request with a path (older peers, and other hosts, send the bytes). */
export function isLocalCopyAnswer(res: http.IncomingMessage): boolean {
  return (
    String(res.headers["content-type"] ?? "")
      .split(";")[0]!
      .trim() === LOCAL_COPY_CONTENT_TYPE
  );
}
