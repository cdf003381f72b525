/**
 * The peer's client-facing port (:4001): an HTTP proxy whose GET requests for
 * allowed URLs are served through the P2P swarm, streaming while downloading.
 * Honours Dragonfly's X-Dragonfly-* request headers and answers with
 * X-Dragonfly-Task-ID.
 *
 * Origin-form requests (`/v2/...`) make it a registry mirror (containerd's
 * hosts.toml, Podman's registries.conf): manifests, tag resolution and blob HEADs
 * are forwarded to the upstream registry as they are; blob GETs go through P2P.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../common/errors.js";
import { HEADERS } from "../common/defaults.js";
import { parseFilter } from "../common/task-id.js";
import { validateExplicitPieceLength } from "../common/piece.js";
import type { Logger } from "../common/logger.js";
import { DownloadSpec } from "../api/common.js";
import type { PeerEngine } from "./engine.js";
import { closeHttp, listenHttp, parseRange, sendError } from "./http-util.js";
import { isForwardable, redact } from "./origin.js";

export interface RegistryMirrorOptions {
  /** Upstream for mirror requests that name none (no X-Dragonfly-Registry header, no `ns=`), e.g. `https://registry.example.com`. */
  defaultRegistry?: string;
  /** Reach registries named by `ns=` over plain HTTP (loopback hosts always are). */
  insecure?: boolean;
}

export interface ProxyOptions {
  /** Query parameters left out of task IDs unless a request says otherwise. */
  defaultFilter: string;
  registryMirror?: RegistryMirrorOptions;
}

/** Upstream response headers a registry client needs; everything else hop-specific is dropped. */
const RESPONSE_HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-authenticate", "trailer", "upgrade"]);
const upstreamAgents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
const MIRROR_BLOB = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/;

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
    if (target === "/v2" || target.startsWith("/v2/") || target.startsWith("/v2?")) return this.mirror(req, res);
    if (!/^https?:\/\//i.test(target)) throw new KilnError("BAD_REQUEST", "send proxy requests with an absolute URL (http://host/path)");
    if (req.method !== "GET" && req.method !== "HEAD") throw new KilnError("BAD_REQUEST", `method ${req.method} is not proxied`, 405);
    if (!wantsP2P(req)) throw new KilnError("BAD_REQUEST", `proxy rules do not allow ${redact(target)}`, 403);
    await this.serveP2P(req, res, this.specFrom(req, target));
  }

  /** A registry mirror request (`/v2/...`): blob GETs through P2P, the rest forwarded to the upstream. */
  private async mirror(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") throw new KilnError("BAD_REQUEST", `method ${req.method} is not allowed on a pull-only registry mirror`, 405);
    const incoming = new URL(req.url ?? "/", "http://mirror.invalid");
    const upstream = this.upstreamFor(req, incoming);
    // `ns` names the registry for the mirror; the upstream itself does not need it.
    incoming.searchParams.delete("ns");
    const url = new URL(incoming.pathname + incoming.search, upstream).toString();
    const blob = MIRROR_BLOB.exec(incoming.pathname);
    const useP2P = String(req.headers[DRAGONFLY_HEADERS.useP2P] ?? "").toLowerCase() !== "false";
    if (blob && req.method === "GET" && useP2P) {
      const digest = blob[2]!;
      try {
        await this.serveP2P(req, res, this.specFrom(req, url), { "docker-content-digest": digest });
      } catch (err) {
        // The registry refused the credentials: let the client see its own answer (WWW-Authenticate included).
        if (!(err instanceof KilnError && (err.status === 401 || err.status === 403)) || res.headersSent) throw err;
        res.removeHeader(HEADERS.taskId);
        await this.forward(req, res, url);
      }
      return;
    }
    await this.forward(req, res, url);
  }

  /** X-Dragonfly-Registry, else containerd's `ns=`, else the configured default. */
  private upstreamFor(req: IncomingMessage, incoming: URL): string {
    const header = req.headers[DRAGONFLY_HEADERS.registry];
    const named = typeof header === "string" && header.trim() ? header.trim() : undefined;
    const ns = incoming.searchParams.get("ns") ?? undefined;
    const cfg = this.opts.registryMirror ?? {};
    const raw = named ?? (ns ? this.registryUrlForHost(ns) : cfg.defaultRegistry);
    if (!raw) throw new KilnError("BAD_REQUEST", "registry mirror request names no registry: send X-Dragonfly-Registry or ?ns=<host>, or start the peer with --registry <url>");
    const withScheme = /^https?:\/\//i.test(raw) ? raw : this.registryUrlForHost(raw);
    let u: URL;
    try {
      u = new URL(withScheme);
    } catch {
      throw new KilnError("BAD_REQUEST", `invalid registry ${JSON.stringify(raw)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new KilnError("BAD_REQUEST", `invalid registry ${JSON.stringify(raw)}`);
    return u.origin;
  }

  /** `host[:port]` → URL: the default registry's scheme when it is that host, plain HTTP for loopback or --registry-insecure, else HTTPS. */
  private registryUrlForHost(host: string): string {
    if (/^https?:\/\//i.test(host)) return host;
    if (host === "docker.io") return "https://registry-1.docker.io";
    const cfg = this.opts.registryMirror ?? {};
    if (cfg.defaultRegistry) {
      try {
        const d = new URL(cfg.defaultRegistry);
        if (d.host === host) return d.origin;
      } catch {
        /* a bad default is reported when it is used */
      }
    }
    const hostname = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    const loopback = hostname === "localhost" || (isIP(hostname) === 4 && hostname.startsWith("127.")) || hostname === "::1";
    return `${loopback || cfg.insecure ? "http" : "https"}://${host}`;
  }

  /** Passes a request to the upstream registry and its answer (status, headers, body: a 401 challenge too) back. */
  private forward(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || (k !== "range" && !isForwardable(k))) continue;
      headers[k] = Array.isArray(v) ? v.join(", ") : v;
    }
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    return new Promise<void>((resolve, reject) => {
      const up = mod.request(u, { method: req.method, headers, agent: u.protocol === "https:" ? upstreamAgents.https : upstreamAgents.http }, (ures) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(ures.headers)) if (v !== undefined && !RESPONSE_HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(ures.statusCode ?? 502, out);
        pipeline(ures, res).then(resolve, (err: Error) => {
          this.log.warn({ url: redact(url), err: err.message }, "forwarding to the registry failed mid-stream");
          res.destroy();
          resolve();
        });
      });
      up.setTimeout(60_000, () => up.destroy(new Error("no answer from the registry within 60 s")));
      up.on("error", (err) => reject(new KilnError("ORIGIN_UNREACHABLE", `registry ${u.origin} unreachable: ${err.message}`, 502)));
      up.end();
    });
  }

  private async serveP2P(req: IncomingMessage, res: ServerResponse, spec: DownloadSpec, extra: Record<string, string> = {}): Promise<void> {
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
    const headers: Record<string, string> = { "content-type": "application/octet-stream", "accept-ranges": "bytes", ...extra };
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
      if (v === undefined || !isForwardable(k)) continue;
      forward[k] = Array.isArray(v) ? v.join(", ") : v;
    }
    const pieceHeader = h[DRAGONFLY_HEADERS.pieceLength];
    const pieceLength = pieceHeader ? validateExplicitPieceLength(Number(pieceHeader)) : undefined;
    const filter = h[DRAGONFLY_HEADERS.filter];
    const spec = DownloadSpec.safeParse({
      url,
      headers: forward,
      tag: String(h[DRAGONFLY_HEADERS.tag] ?? ""),
      application: String(h[DRAGONFLY_HEADERS.application] ?? ""),
      filteredQueryParams: parseFilter(typeof filter === "string" ? filter : this.opts.defaultFilter),
      ...(pieceLength ? { pieceLength } : {}),
    });
    if (!spec.success) {
      const issue = spec.error.issues[0];
      throw new KilnError("BAD_REQUEST", `${issue?.path.join(".") || "request"}: ${issue?.message ?? "invalid"} (${redact(url)})`);
    }
    return spec.data;
  }

  listen(host: string, port: number): Promise<number> {
    return listenHttp(this.server, host, port);
  }

  close(): Promise<void> {
    return closeHttp(this.server);
  }
}

function wantsP2P(req: IncomingMessage): boolean {
  const flag = String(req.headers[DRAGONFLY_HEADERS.useP2P] ?? "").toLowerCase();
  if (flag === "true") return true;
  if (flag === "false") return false;
  // Default rule until configurable rules land: registry blobs go through P2P.
  return /\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}/.test(req.url ?? "");
}
