/**
 * The peer's client-facing port (:4001). Three ways in, one policy (rules.ts):
 *
 * - Forward proxy (`HTTP_PROXY`): absolute-URL requests. Rule `p2p` GETs are
 *   served through the swarm (p2p-response.ts); `direct` ones are forwarded as
 *   they are (forward.ts); anything else gets 403.
 * - `CONNECT` (`HTTPS_PROXY`): tunnelled, or terminated with kiln's CA (connect.ts).
 * - Registry mirror (containerd's hosts.toml, Podman's registries.conf):
 *   origin-form `/v2/...` requests for the upstream mirror-upstream.ts names. Pull-only.
 *
 * Manifests (either way in) are handled by manifests.ts: by digest from the swarm, by
 * tag from the registry, or from memory while the registry fails.
 *
 * Honours Dragonfly's X-Dragonfly-* request headers and answers with X-Dragonfly-Task-ID.
 * `kiln get` on this host may ask for a local copy instead of the bytes (local-copy.ts).
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { KilnError } from "../../common/errors.js";
import { PROXY } from "../../common/defaults.js";
import { isLoopbackHost } from "../../common/net.js";
import type { Logger } from "../../common/logger.js";
import { redact } from "../../common/redact.js";
import { DRAGONFLY_HEADERS, KILN_PROXY_HEADERS } from "../../api/proxy.js";
import type { CertificateAuthority } from "./ca.js";
import { handleConnect } from "./connect.js";
import { downloadSpecFrom, useP2PHeader } from "./download-spec.js";
import type { ProxyEngine } from "./engine-port.js";
import { forwardRequest, rejectConnect } from "./forward.js";
import { sendLocalCopy } from "./local-copy.js";
import { ClientAccess } from "./client-access.js";
import { mirrorUpstream, type RegistryMirrorOptions } from "./mirror-upstream.js";
import { AnonymousManifests } from "./anonymous-manifests.js";
import type { StaleTagOptions } from "./manifest-by-tag.js";
import { ManifestRequests } from "./manifests.js";
import { traceRequest } from "./request-trace.js";
import type { TagMemory } from "./tag-memory.js";
import { parseManifestUrl } from "../../common/oci.js";
import { digestHeaders, sendP2P, type ServedFrom } from "./p2p-response.js";
import type { ProxyPolicy, RefusalCause } from "./rules.js";
import { closeHttp, listenHttp, sendError } from "../http-util.js";

/** How a refused request came in: a registry mirror request, an absolute URL (HTTP_PROXY), a CONNECT (HTTPS_PROXY). */
export type ProxyWayIn = "mirror" | "proxy" | "connect";

export interface ProxyMetrics {
  proxyBytes: { inc(labels: { from: ServedFrom }, bytes: number): void };
  localCopies: { inc(): void };
  proxyRefused: { inc(labels: { way: ProxyWayIn; cause: RefusalCause }): void };
}

/** A registry whose mirror requests are refused is named at warn level at most this often (each refusal is counted and logged at info). */
const MIRROR_REFUSAL_WARN_MS = 60_000;

export interface ProxyOptions {
  policy: ProxyPolicy;
  registryMirror?: RegistryMirrorOptions;
  /** Needed to intercept CONNECT; without it every CONNECT is tunnelled. */
  ca?: CertificateAuthority;
  metrics?: ProxyMetrics;
  /** How long an origin's answer to a client's credentials is remembered (content that needed credentials). */
  accessCheckTtlMs: number;
  /** Tags answered from memory while their registry fails; undefined: switched off. */
  staleTags?: { memory: TagMemory; opts: StaleTagOptions };
  /** Download an image manifest's config and layers as soon as the manifest is answered. */
  prefetchLayers: boolean;
}

export class ProxyServer {
  readonly server: http.Server;
  /** Intercepted TLS connections → the `https://host:port` their requests are for. */
  private readonly intercepted = new WeakMap<Socket, string>();
  /** Who may be served content that needed credentials at its origin. */
  private readonly access: ClientAccess;
  private readonly manifests: ManifestRequests;
  /** Registry host → when its refused mirror requests were last named at warn level, and how many came since. */
  private readonly mirrorRefusals = new Map<string, { warnedAt: number; since: number }>();

  constructor(
    private readonly engine: ProxyEngine,
    private readonly log: Logger,
    private readonly opts: ProxyOptions,
  ) {
    this.access = new ClientAccess({ ttlMs: opts.accessCheckTtlMs, timeoutMs: PROXY.accessCheckTimeoutMs, maxEntries: PROXY.accessCheckEntries });
    this.manifests = new ManifestRequests({
      engine,
      access: this.access,
      anonymous: new AnonymousManifests({ timeoutMs: PROXY.accessCheckTimeoutMs, maxEntries: PROXY.anonymousManifestEntries }),
      log,
      defaultFilter: opts.policy.defaultFilter,
      prefetchLayers: opts.prefetchLayers,
      ...(opts.staleTags ? { tags: opts.staleTags } : {}),
    });
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        if (!(err instanceof KilnError)) this.log.error({ err }, "proxy request failed");
        else if (err.status === 403) {
          this.log.info({ method: req.method, url: redact(this.absoluteUrl(req) ?? req.url ?? ""), reason: err.message }, "proxy refused a request");
        }
        sendError(res, err);
      });
    });
    const connect = {
      policy: opts.policy,
      ...(opts.ca ? { ca: opts.ca } : {}),
      log,
      refused: (cause: RefusalCause) => opts.metrics?.proxyRefused.inc({ way: "connect", cause }),
      intercepted: (tls: Socket, origin: string) => {
        this.intercepted.set(tls, origin);
        this.server.emit("connection", tls);
      },
    };
    this.server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Once the server hands over a CONNECT socket, its errors are ours: a client resetting it
      // (after a refusal, mid-tunnel) must not become an unhandled 'error' that ends the process.
      socket.on("error", (err: Error) => this.log.debug({ target: req.url, err: err.message }, "CONNECT client socket failed"));
      handleConnect(connect, req, socket, head).catch((err: Error) => {
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
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(target)?.[1];
    if (scheme) throw new KilnError("BAD_REQUEST", `this proxy fetches http:// and https:// URLs only, not ${scheme.toLowerCase()}://`);
    throw new KilnError("BAD_REQUEST", "send proxy requests with an absolute URL (http://host/path), or registry mirror requests under /v2/");
  }

  /** A client on this host, not inside an intercepted tunnel: `kiln get`. */
  private isLocalClient(req: IncomingMessage): boolean {
    return isLoopbackHost(req.socket.remoteAddress) && !this.intercepted.has(req.socket);
  }

  /** One request for `url`, through P2P, forwarded, or refused, as the policy says. */
  private async proxy(req: IncomingMessage, res: ServerResponse, url: URL, way: ProxyWayIn = "proxy"): Promise<void> {
    const local = this.isLocalClient(req);
    const method = req.method ?? "GET";
    const manifest = parseManifestUrl(url);
    // A manifest's HEAD is answered from its content, as its GET is.
    const asked = manifest?.kind === "digest" && method === "HEAD" ? "GET" : method;
    const decision = this.opts.policy.decide(url, asked, useP2PHeader(req), local);
    const trace = traceRequest(res, this.log, { method, path: url.pathname, action: decision.action });
    if (decision.action === "refuse") {
      this.opts.metrics?.proxyRefused.inc({ way, cause: decision.cause ?? "rule" });
      if (way === "mirror") this.warnMirrorRefused(url, decision.reason);
      throw new KilnError("FORBIDDEN", `proxy refused ${req.method} ${redact(url.toString())}: ${decision.reason}`);
    }
    if (manifest?.kind === "digest" && decision.action === "p2p") return this.manifests.byDigest(req, res, url, manifest);
    if (manifest?.kind === "tag" && decision.action === "direct" && this.manifests.handlesTag(req)) return this.manifests.byTag(req, res, url, manifest);
    if (decision.action === "direct" && url.pathname === "/v2/" && method === "GET") return this.manifests.versionCheck(req, res, url);
    if (decision.action === "direct") return forwardRequest(req, res, url, this.log);
    try {
      const download = await this.engine.download(downloadSpecFrom(req, url.toString(), this.opts.policy.defaultFilter));
      trace.mark("registered");
      // Known with the layout (a failed download throws here: its origin's refusal is answered below).
      await Promise.race([download.task.waitForLayout(), download.done]);
      trace.mark("layout");
      const refusal = await this.access.refusal(download.task.meta.access, url, req.headers);
      trace.mark("access");
      if (refusal) {
        this.log.info(
          { url: redact(url.toString()), task: download.taskId, reason: refusal },
          "content that needed credentials: the origin answers this client itself",
        );
        return await forwardRequest(req, res, url, this.log);
      }
      if (local && req.headers[KILN_PROXY_HEADERS.localCopy] === "1" && !req.headers.range) {
        return await sendLocalCopy(res, download, { log: this.log, handedOver: () => this.opts.metrics?.localCopies.inc() });
      }
      await sendP2P(req, res, download, {
        headers: digestHeaders(url),
        log: this.log,
        served: (bytes, from) => this.opts.metrics?.proxyBytes.inc({ from }, bytes),
      });
    } catch (err) {
      // The origin refused the credentials: let the client see its own answer (WWW-Authenticate included).
      const refusedByOrigin = err instanceof KilnError && err.code === "ORIGIN_STATUS" && (err.status === 401 || err.status === 403);
      if (!refusedByOrigin || res.headersSent) throw err;
      res.removeHeader(DRAGONFLY_HEADERS.taskId);
      await forwardRequest(req, res, url, this.log);
    }
  }

  /** A registry mirror request (`/v2/...`) for the upstream the request names. */
  private async mirror(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new KilnError("BAD_REQUEST", `method ${req.method} is not allowed on a pull-only registry mirror`, 405);
    }
    const incoming = new URL(req.url ?? "/", "http://mirror.invalid");
    const header = req.headers[DRAGONFLY_HEADERS.registry];
    const named = typeof header === "string" ? header : undefined;
    const upstream = mirrorUpstream(named, incoming.searchParams.get("ns") ?? undefined, this.opts.registryMirror ?? {});
    // `ns` names the registry for the mirror; the upstream itself does not need it.
    incoming.searchParams.delete("ns");
    await this.proxy(req, res, new URL(incoming.pathname + incoming.search, upstream), "mirror");
  }

  /**
   * A refused mirror request is P2P silently skipped: containerd, told this peer is the
   * registry's mirror, takes the 403 and pulls from the registry itself. Said at warn
   * level once a minute per registry, with the fix.
   */
  private warnMirrorRefused(url: URL, reason: string): void {
    const now = Date.now();
    // Clients name the registry (ns=, a header): the map is bounded, forgetting when full.
    if (this.mirrorRefusals.size >= 1_000 && !this.mirrorRefusals.has(url.host)) this.mirrorRefusals.clear();
    const seen = this.mirrorRefusals.get(url.host) ?? { warnedAt: 0, since: 0 };
    seen.since++;
    this.mirrorRefusals.set(url.host, seen);
    if (now - seen.warnedAt < MIRROR_REFUSAL_WARN_MS) return;
    this.log.warn(
      { registry: url.host, refused: seen.since, reason },
      "registry mirror requests refused: the runtime pulls from this registry itself, without P2P. " +
        "Allow it (kiln peer --proxy-allow-host, proxy.yaml allowHosts) or remove its hosts.toml (kiln config containerd --proxy-config writes one per allowed registry)",
    );
    seen.warnedAt = now;
    seen.since = 0;
  }

  listen(host: string, port: number): Promise<number> {
    return listenHttp(this.server, host, port);
  }

  close(): Promise<void> {
    return closeHttp(this.server);
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
