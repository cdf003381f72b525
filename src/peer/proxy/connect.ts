/**
 * A CONNECT (`HTTPS_PROXY`): refused, tunnelled as is, or, for intercepted hosts,
 * terminated with a certificate from kiln's CA so that the requests inside follow
 * the same rules as plain HTTP.
 */
import type { IncomingMessage } from "node:http";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { KilnError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { CertificateAuthority } from "./ca.js";
import { tunnel } from "./forward.js";
import type { ProxyPolicy, RefusalCause } from "./rules.js";

export interface ConnectContext {
  policy: ProxyPolicy;
  /** Needed to intercept; without it every allowed CONNECT is tunnelled. */
  ca?: CertificateAuthority;
  log: Logger;
  /** Counts a refused CONNECT (kiln_peer_proxy_refused_total{way="connect"}). */
  refused?(cause: RefusalCause): void;
  /** Takes over a terminated connection, whose requests are for `origin` (`https://host[:port]`). */
  intercepted(tls: TLSSocket, origin: string): void;
}

/** Handles one CONNECT; throws a KilnError (to be written on the raw socket) when it is refused. */
export async function handleConnect(ctx: ConnectContext, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const { hostname, port } = connectTarget(req.url ?? "");
  const policy = ctx.policy;
  if (!policy.allowsConnect(hostname, String(port))) {
    ctx.log.info({ target: req.url }, "proxy refused a CONNECT");
    const portOnly = policy.allowsHost(hostname, String(port));
    ctx.refused?.(portOnly ? "port" : "host");
    const why = portOnly
      ? `port ${port} is not allowed for CONNECT (allow ${hostname}:${port} explicitly; a host without a port allows 443 only)`
      : `host ${hostname} is not on this proxy's allowed hosts (kiln peer --proxy-allow-host)`;
    throw new KilnError("FORBIDDEN", `proxy refused CONNECT ${req.url}: ${why}`);
  }
  if (!ctx.ca || !policy.intercepts(hostname, String(port))) return tunnel(socket, head, hostname, port, ctx.log);
  const context = await ctx.ca.contextFor(hostname);
  socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
  if (head.length) socket.unshift(head);
  const tls = new TLSSocket(socket as Socket, { isServer: true, secureContext: context, ALPNProtocols: ["http/1.1"] });
  tls.on("error", (err) => ctx.log.debug({ target: req.url, err: err.message }, "intercepted TLS connection failed"));
  ctx.intercepted(tls, `https://${isIP(hostname) === 6 ? `[${hostname}]` : hostname}${port === 443 ? "" : `:${port}`}`);
}

/** `host:port` / `[v6]:port` → its parts. */
function connectTarget(target: string): { hostname: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:/\s]+):(\d{1,5})$/.exec(target);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new KilnError("BAD_REQUEST", `CONNECT needs host:port, got ${JSON.stringify(target)}`);
  return { hostname: m[1]!.replace(/^\[|\]$/g, ""), port };
}
