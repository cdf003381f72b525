/**
 * The peer's client-facing port (:4001). Three ways in, one policy (proxy-rules.ts):
 *
 * - Forward proxy (`HTTP_PROXY`): absolute-URL requests. Rule `p2p` GETs are
 *   served through the swarm, streaming while downloading; `direct` ones are
 *   forwarded as they are; anything else gets 403.
 * - `CONNECT` (`HTTPS_PROXY`): tunnelled as is, or, for intercepted hosts,
 *   terminated with a certificate from kiln's CA so the requests inside follow
 *   the same rules as plain HTTP.
 * - Registry mirror (containerd's hosts.toml, Podman's registries.conf):
 *   origin-form `/v2/...` requests; the upstream comes from X-Dragonfly-Registry,
 *   else `ns=`, else `--registry`. Pull-only.
 *
 * Honours Dragonfly's X-Dragonfly-* request headers and answers with X-Dragonfly-Task-ID.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { isIP, type Socket } from "node:net";
import { Readable, type Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { TLSSocket } from "node:tls";
import { KilnError } from "../common/errors.js";
import { isLoopbackHost, registryServer } from "../common/net.js";
import { HEADERS } from "../common/defaults.js";
import { parseFilter } from "../common/task-id.js";
import { validateExplicitPieceLength } from "../common/piece.js";
import type { Logger } from "../common/logger.js";
import { DownloadSpec } from "../api/common.js";
import type { PeerEngine } from "./download/engine.js";
import type { CertificateAuthority } from "./ca.js";
import { endToEndHeaders, forwardRequest, rejectConnect, tunnel } from "./forward.js";
import { closeHttp, headerEncode, listenHttp, parseRange, sendError } from "./http-util.js";
import { redact } from "../common/redact.js";
import type { ProxyPolicy } from "./proxy-rules.js";

export interface RegistryMirrorOptions {
  /** Upstream for mirror requests that name none (no X-Dragonfly-Registry header, no `ns=`), e.g. `https://registry.example.com`. */
  defaultRegistry?: string;
  /** Reach registries named by `ns=` over plain HTTP (loopback hosts always are). */
  insecure?: boolean;
}

export interface ProxyOptions {
  policy: ProxyPolicy;
  registryMirror?: RegistryMirrorOptions;
  /** Needed to intercept CONNECT; without it every CONNECT is tunnelled. */
  ca?: CertificateAuthority;
}

const BLOB_PATH = /\/v2\/.+\/blobs\/(sha256:[a-f0-9]{64})$/;

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
  /** Intercepted TLS connections → the `https://host:port` their requests are for. */
  private readonly intercepted = new WeakMap<Socket, string>();

  constructor(
    private readonly engine: PeerEngine,
    private readonly log: Logger,
    private readonly opts: ProxyOptions,
  ) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        if (!(err instanceof KilnError)) this.log.error({ err }, "proxy request failed");
        else if (err.status === 403) this.log.info({ method: req.method, url: redact(this.absoluteUrl(req) ?? req.url ?? ""), reason: err.message }, "proxy refused a request");
        sendError(res, err);
      });
    });
    this.server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.connect(req, socket, head).catch((err: Error) => {
        if (!(err instanceof KilnError)) this.log.error({ target: req.url, err }, "CONNECT failed");
        if (!socket.destroyed) rejectConnect(socket, err);
      });
    });
  }

  /** The absolute URL a request is for, when it is not a registry mirror request. */
  private absoluteUrl(req: IncomingMessage): string | undefined {
    const target = req.url ?? "/";
    if (/^https?:\/\//i.test(target)) return target;
    const base = this.intercepted.get(req.socket);
    return base ? base + target : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? "";
    const absolute = this.absoluteUrl(req);
    if (absolute) return this.proxy(req, res, parseTarget(absolute));
    if (target === "/healthy") return void res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    if (target === "/v2" || target.startsWith("/v2/") || target.startsWith("/v2?")) return this.mirror(req, res);
    throw new KilnError("BAD_REQUEST", "send proxy requests with an absolute URL (http://host/path), or registry mirror requests under /v2/");
  }

  /** One request for `url`, through P2P, forwarded, or refused, as the policy says. */
  private async proxy(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const header = String(req.headers[DRAGONFLY_HEADERS.useP2P] ?? "").toLowerCase();
    const local = isLoopbackHost(req.socket.remoteAddress) && !this.intercepted.has(req.socket);
    const decision = this.opts.policy.decide(url, req.method ?? "GET", header === "true" ? true : header === "false" ? false : undefined, local);
    if (decision.action === "refuse") throw new KilnError("FORBIDDEN", `proxy refused ${req.method} ${redact(url.toString())}: ${decision.reason}`);
    if (decision.action === "direct") return forwardRequest(req, res, url, this.log);
    const blob = BLOB_PATH.exec(url.pathname);
    try {
      await this.serveP2P(req, res, this.specFrom(req, url.toString()), blob ? { "docker-content-digest": blob[1]! } : {});
    } catch (err) {
      // The origin refused the credentials: let the client see its own answer (WWW-Authenticate included).
      const refusedByOrigin = err instanceof KilnError && err.code === "ORIGIN_STATUS" && (err.status === 401 || err.status === 403);
      if (!refusedByOrigin || res.headersSent) throw err;
      res.removeHeader(HEADERS.taskId);
      await forwardRequest(req, res, url, this.log);
    }
  }

  /** A registry mirror request (`/v2/...`) for the upstream the request names. */
  private async mirror(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") throw new KilnError("BAD_REQUEST", `method ${req.method} is not allowed on a pull-only registry mirror`, 405);
    const incoming = new URL(req.url ?? "/", "http://mirror.invalid");
    const upstream = this.upstreamFor(req, incoming);
    // `ns` names the registry for the mirror; the upstream itself does not need it.
    incoming.searchParams.delete("ns");
    await this.proxy(req, res, new URL(incoming.pathname + incoming.search, upstream));
  }

  /** A CONNECT: refused, tunnelled, or (intercepted hosts) terminated with kiln's CA. */
  private async connect(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[^:/\s]+):(\d{1,5})$/.exec(req.url ?? "");
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) throw new KilnError("BAD_REQUEST", `CONNECT needs host:port, got ${JSON.stringify(req.url ?? "")}`);
    const hostname = m[1]!.replace(/^\[|\]$/g, "");
    const policy = this.opts.policy;
    if (!policy.allowsConnect(hostname, String(port))) {
      this.log.info({ target: req.url }, "proxy refused a CONNECT");
      const why = policy.allowsHost(hostname, String(port))
        ? `port ${port} is not allowed for CONNECT (allow ${hostname}:${port} explicitly; a host without a port allows 443 only)`
        : `host ${hostname} is not on this proxy's allowed hosts (kiln peer --proxy-allow-host)`;
      throw new KilnError("FORBIDDEN", `proxy refused CONNECT ${req.url}: ${why}`);
    }
    const ca = this.opts.ca;
    if (!ca || !policy.intercepts(hostname, String(port))) return tunnel(socket, head, hostname, port, this.log);
    const context = await ca.contextFor(hostname);
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) socket.unshift(head);
    const tls = new TLSSocket(socket as Socket, { isServer: true, secureContext: context, ALPNProtocols: ["http/1.1"] });
    tls.on("error", (err) => this.log.debug({ target: req.url, err: err.message }, "intercepted TLS connection failed"));
    this.intercepted.set(tls, `https://${isIP(hostname) === 6 ? `[${hostname}]` : hostname}${port === 443 ? "" : `:${port}`}`);
    this.server.emit("connection", tls);
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

  /** `host[:port]` → URL: the default registry's scheme when it is that host, else plain HTTP for loopback or --registry-insecure, else HTTPS. */
  private registryUrlForHost(host: string): string {
    const cfg = this.opts.registryMirror ?? {};
    if (cfg.defaultRegistry && registryServer(cfg.defaultRegistry).host === host) return new URL(cfg.defaultRegistry).origin;
    return registryServer(host, cfg.insecure).server;
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
    if (req.method === "HEAD") return void res.writeHead(range ? 206 : 200, headers).end();
    // The status waits for the first verified byte: a download that fails before it
    // (a blob that does not match its digest, an origin error) gets a JSON error, not a cut connection.
    const bytes = handle.stream(range)[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const first = await bytes.next();
    res.writeHead(range ? 206 : 200, headers);
    try {
      await pipeline(Readable.from(resume(first, bytes)), res, { end: !trailers });
      if (trailers) {
        res.addTrailers({ [RESULT_TRAILER]: "ok" });
        res.end();
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ task: handle.taskId, err: message }, "proxied download failed mid-stream");
      if (trailers && !res.destroyed) {
        res.addTrailers({ [RESULT_TRAILER]: `error: ${headerEncode(message)}` });
        res.end();
      } else {
        res.destroy();
      }
    }
  }

  private specFrom(req: IncomingMessage, url: string): DownloadSpec {
    const h = req.headers;
    const pieceHeader = h[DRAGONFLY_HEADERS.pieceLength];
    const pieceLength = pieceHeader ? validateExplicitPieceLength(Number(pieceHeader)) : undefined;
    const filter = h[DRAGONFLY_HEADERS.filter];
    const spec = DownloadSpec.safeParse({
      url,
      headers: endToEndHeaders(req, { range: false }),
      tag: String(h[DRAGONFLY_HEADERS.tag] ?? ""),
      application: String(h[DRAGONFLY_HEADERS.application] ?? ""),
      filteredQueryParams: parseFilter(typeof filter === "string" ? filter : this.opts.policy.defaultFilter),
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

/** The rest of a byte stream whose first chunk was already read. */
async function* resume(first: IteratorResult<Buffer>, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  try {
    for (let next = first; !next.done; next = await rest.next()) yield next.value;
  } finally {
    await rest.return?.();
  }
}

function parseTarget(raw: string): URL {
  try {
    const u = new URL(raw);
    if (u.protocol === "http:" || u.protocol === "https:") return u;
  } catch {
    /* reported below */
  }
  throw new KilnError("BAD_REQUEST", `invalid proxy target ${JSON.stringify(redact(raw))}`);
}
