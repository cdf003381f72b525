/**
 * The peer's client-facing port (:4001): an HTTP proxy whose GET requests for
 * allowed URLs are served through the P2P swarm, streaming while downloading.
 * Honours Dragonfly's X-Dragonfly-* request headers and answers with
 * X-Dragonfly-Task-ID.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../common/errors.js";
import { HEADERS } from "../common/defaults.js";
import { parseFilter } from "../common/task-id.js";
import { validateExplicitPieceLength } from "../common/piece.js";
import type { Logger } from "../common/logger.js";
import { DownloadSpec } from "../api/common.js";
import type { PeerEngine } from "./engine.js";
import { parseRange, sendError } from "./http-util.js";
import { redact } from "./origin.js";

export interface ProxyOptions {
  /** Query parameters left out of task IDs unless a request says otherwise. */
  defaultFilter: string;
}

/** Request headers that describe the hop, not the resource: never forwarded to the origin. */
const HOP_BY_HOP = new Set(["connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "range"]);

export const DRAGONFLY_HEADERS = {
  tag: "x-dragonfly-tag",
  application: "x-dragonfly-application",
  filter: "x-dragonfly-filtered-query-params",
  pieceLength: "x-dragonfly-piece-length",
  useP2P: "x-dragonfly-use-p2p",
  registry: "x-dragonfly-registry",
} as const;

/** The trailer that tells a client whether a streamed body was complete and verified. */
export const RESULT_TRAILER = "x-kiln-result";
/** Sent with chunked answers so a client can still show progress. */
export const LENGTH_HEADER = "x-kiln-content-length";

export class ProxyServer {
  readonly server: http.Server;

  constructor(
    private readonly engine: PeerEngine,
    private readonly log: Logger,
    private readonly opts: ProxyOptions,
  ) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        if (!(err instanceof KilnError)) this.log.error({ err }, "proxy request failed");
        sendError(res, err);
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? "";
    if (target === "/healthy") return void res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    if (!/^https?:\/\//i.test(target)) throw new KilnError("BAD_REQUEST", "send proxy requests with an absolute URL (http://host/path)");
    if (req.method !== "GET" && req.method !== "HEAD") throw new KilnError("BAD_REQUEST", `method ${req.method} is not proxied`, 405);
    if (!wantsP2P(req)) throw new KilnError("BAD_REQUEST", `proxy rules do not allow ${redact(target)}`, 403);
    const spec = this.specFrom(req, target);
    const handle = await this.engine.download(spec);
    res.setHeader(HEADERS.taskId, handle.taskId);
    // Headers go out once the length is known, or the task has failed.
    await Promise.race([handle.task.waitForLayout(), handle.done]);
    const length = handle.task.meta.contentLength;
    const rangeHeader = req.headers.range;
    const range = length !== null ? parseRange(rangeHeader, length) : undefined;
    if (range === "invalid") {
      res.writeHead(416, { "content-range": `bytes */${length}` }).end();
      return;
    }
    const trailers = /\btrailers\b/i.test(String(req.headers.te ?? ""));
    const headers: Record<string, string> = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
    if (length !== null) {
      const size = range ? range.end - range.start : length;
      if (trailers) headers[LENGTH_HEADER] = String(size);
      else headers["content-length"] = String(size);
      if (range) headers["content-range"] = `bytes ${range.start}-${range.end - 1}/${length}`;
    }
    if (trailers) headers["trailer"] = RESULT_TRAILER;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === "HEAD") return void res.end();
    try {
      await pipeline(handle.stream(range), res, { end: !trailers });
      if (trailers) {
        res.addTrailers({ [RESULT_TRAILER]: "ok" });
        res.end();
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ task: handle.taskId, err: message }, "proxied download failed mid-stream");
      if (trailers && !res.destroyed) {
        res.addTrailers({ [RESULT_TRAILER]: `error: ${encodeURIComponent(message)}` });
        res.end();
      } else {
        res.destroy();
      }
    }
  }

  private specFrom(req: IncomingMessage, url: string): DownloadSpec {
    const h = req.headers;
    const forward: Record<string, string> = {};
    for (const [k, v] of Object.entries(h)) {
      if (v === undefined || HOP_BY_HOP.has(k) || k.startsWith("x-dragonfly-") || k.startsWith("x-kiln-")) continue;
      forward[k] = Array.isArray(v) ? v.join(", ") : v;
    }
    const pieceHeader = h[DRAGONFLY_HEADERS.pieceLength];
    const pieceLength = pieceHeader ? validateExplicitPieceLength(Number(pieceHeader)) : undefined;
    const filter = h[DRAGONFLY_HEADERS.filter];
    return DownloadSpec.parse({
      url,
      headers: forward,
      tag: String(h[DRAGONFLY_HEADERS.tag] ?? ""),
      application: String(h[DRAGONFLY_HEADERS.application] ?? ""),
      filteredQueryParams: parseFilter(typeof filter === "string" ? filter : this.opts.defaultFilter),
      ...(pieceLength ? { pieceLength } : {}),
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject).listen(port, host, () => {
        const a = this.server.address();
        resolve(typeof a === "object" && a ? a.port : port);
      });
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function wantsP2P(req: IncomingMessage): boolean {
  const flag = String(req.headers[DRAGONFLY_HEADERS.useP2P] ?? "").toLowerCase();
  if (flag === "true") return true;
  if (flag === "false") return false;
  // Default rule until configurable rules land: registry blobs go through P2P.
  return /\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}/.test(req.url ?? "");
}
