/**
 * What the peer's proxy does with a request: serve it through P2P, forward it
 * directly, or refuse it. Two layers, checked in order:
 *
 * 1. Allowed hosts. A request (absolute URL, CONNECT, or a registry mirror's
 *    upstream) to a host not on the list is refused with 403, so the proxy is
 *    never an open proxy unless someone writes `*`.
 * 2. Rules: the first rule whose regex matches the full URL decides; no match
 *    means `direct`. The default rule sends registry blob downloads through P2P.
 *
 * The settings and their schema are in api/proxy-config.ts; this is their compiled form.
 */
import type { ProxyAction, ProxyPolicyOptions, ProxyRule } from "../../api/proxy-config.js";

interface CompiledHost {
  /** Lower-case host name, without brackets; `*` for all; `.example.com` for a wildcard. */
  name: string;
  port?: string;
}

function compileHost(pattern: string): CompiledHost {
  const p = pattern.trim().toLowerCase();
  if (p === "*") return { name: "*" };
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(p);
  const name = (m?.[1] ?? p).replace(/^\[|\]$/g, "");
  return { name: name.startsWith("*.") ? name.slice(1) : name, ...(m?.[2] ? { port: m[2] } : {}) };
}

function hostMatches(patterns: CompiledHost[], hostname: string, port: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return patterns.some((p) => {
    if (p.port && p.port !== port) return false;
    if (p.name === "*") return true;
    return p.name.startsWith(".") ? h.endsWith(p.name) && h.length > p.name.length : h === p.name;
  });
}

/** Why a request was refused, as the refusal counter labels it. */
export type RefusalCause = "host" | "rule" | "port";

export interface ProxyDecision {
  action: ProxyAction;
  /** Why, for a 403 body and the logs. */
  reason: string;
  /** With `refuse`: which check refused it. */
  cause?: RefusalCause;
}

/** The compiled policy one proxy server applies to every request. */
export class ProxyPolicy {
  private readonly allow: CompiledHost[];
  private readonly intercept: CompiledHost[];
  private readonly rules: { re: RegExp; rule: ProxyRule }[];
  readonly defaultFilter: string;
  readonly openProxy: boolean;

  constructor(opts: ProxyPolicyOptions) {
    this.allow = opts.allowHosts.map(compileHost);
    this.intercept = opts.interceptHosts.map(compileHost);
    this.rules = opts.rules.map((rule) => ({ re: new RegExp(rule.regex), rule }));
    this.defaultFilter = opts.defaultFilter;
    this.openProxy = this.allow.some((p) => p.name === "*");
  }

  /** Whether the proxy may talk to this host at all. */
  allowsHost(hostname: string, port: string): boolean {
    return hostMatches(this.allow, hostname, port);
  }

  /**
   * Whether a CONNECT tunnel to host:port is allowed: a pattern that names a port
   * allows that port, one without a port allows 443 only, so an allowed registry
   * host cannot be used to tunnel to its SSH or database ports.
   */
  allowsConnect(hostname: string, port: string): boolean {
    return hostMatches(
      this.allow.filter((p) => p.port !== undefined || port === "443"),
      hostname,
      port,
    );
  }

  /** Whether a CONNECT to this host is terminated (TLS interception) rather than tunnelled. */
  intercepts(hostname: string, port: string): boolean {
    return hostMatches(this.intercept, hostname, port);
  }

  /**
   * The action for a request to `url`. `useP2P` is the client's X-Dragonfly-Use-P2P
   * header, when sent. A `localClient` (loopback: `kiln get` on this node) may ask for
   * a P2P download from any host, as dfget may through Dragonfly's local socket.
   */
  decide(url: URL, method: string, useP2P?: boolean, localClient = false): ProxyDecision {
    const port = url.port || (url.protocol === "https:" ? "443" : "80");
    const localDownload = localClient && useP2P === true && method === "GET";
    if (!localDownload && !this.allowsHost(url.hostname, port)) {
      return { action: "refuse", cause: "host", reason: `host ${url.host} is not on this proxy's allowed hosts (kiln peer --proxy-allow-host)` };
    }
    const matched = this.rules.find((r) => r.re.test(url.toString()));
    if (matched?.rule.action === "refuse")
      return { action: "refuse", cause: "rule", reason: `proxy rule ${JSON.stringify(matched.rule.regex)} refuses this URL` };
    // Only whole-object GETs can be served from the swarm; the client may opt in or out per request.
    const p2p = useP2P ?? matched?.rule.action === "p2p";
    if (p2p && method === "GET") return { action: "p2p", reason: matched ? `rule ${JSON.stringify(matched.rule.regex)}` : "X-Dragonfly-Use-P2P" };
    return { action: "direct", reason: matched ? `rule ${JSON.stringify(matched.rule.regex)}` : "no rule matched" };
  }
}
