/**
 * What the peer's proxy does with a request: serve it through P2P, forward it
 * directly, or refuse it. Two layers, checked in order:
 *
 * 1. Allowed hosts. A request (absolute URL, CONNECT, or a registry mirror's
 *    upstream) to a host not on the list is refused with 403, so the proxy is
 *    never an open proxy unless someone writes `*`.
 * 2. Rules: the first rule whose regex matches the full URL decides; no match
 *    means `direct`. The default rule sends registry blob downloads through P2P.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { DEFAULT_PROXY_FILTER } from "../common/defaults.js";
import { KilnError } from "../common/errors.js";

export const ProxyAction = z.enum(["p2p", "direct", "refuse"]);
export type ProxyAction = z.infer<typeof ProxyAction>;

const Regex = z.string().min(1).refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, "not a valid regular expression");

/**
 * `registry.example.com` (any port), `registry.example.com:5000`, `*.example.com`
 * (subdomains, any port), `10.0.0.7`, `[::1]:5000`, or `*` (every host: an open proxy).
 */
export const HostPattern = z
  .string()
  .trim()
  .min(1)
  .regex(/^(\*|(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?)$/, "expected host, host:port, *.domain or *");

export const ProxyRule = z
  .object({
    regex: Regex,
    action: ProxyAction,
  })
  .strict();
export type ProxyRule = z.infer<typeof ProxyRule>;

/** The proxy section of a peer's config file (`kiln peer --proxy-config file.yaml`). */
export const ProxyConfigFile = z
  .object({
    /** Hosts the proxy forwards to, tunnels to, or mirrors. */
    allowHosts: z.array(HostPattern).default([]),
    /** Replaces the default rules when given. */
    rules: z.array(ProxyRule).optional(),
    /** CONNECT targets whose TLS the peer terminates with its CA, so their blobs can go through P2P. */
    interceptHosts: z.array(HostPattern).default([]),
    defaultFilter: z.string().optional(),
  })
  .strict();
export type ProxyConfigFile = z.infer<typeof ProxyConfigFile>;

/** Registry blob downloads go through P2P; everything else allowed is forwarded as is. */
export const DEFAULT_PROXY_RULES: readonly ProxyRule[] = [{ regex: "/v2/.+/blobs/sha256:[a-f0-9]{64}(\\?|$)", action: "p2p" }];

export interface ProxyPolicyOptions {
  allowHosts: string[];
  rules: readonly ProxyRule[];
  interceptHosts: string[];
  defaultFilter: string;
}

export function defaultProxyPolicy(overrides: Partial<ProxyPolicyOptions> = {}): ProxyPolicyOptions {
  return { allowHosts: [], rules: DEFAULT_PROXY_RULES, interceptHosts: [], defaultFilter: DEFAULT_PROXY_FILTER, ...overrides };
}

/** Reads and validates a proxy config file (YAML or JSON); errors name the file and the field. */
export async function loadProxyConfigFile(path: string): Promise<ProxyConfigFile> {
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(path, "utf8"));
  } catch (err) {
    throw new KilnError("BAD_REQUEST", `proxy config ${path}: ${(err as Error).message}`);
  }
  const parsed = ProxyConfigFile.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KilnError("BAD_REQUEST", `proxy config ${path}: ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

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

export interface ProxyDecision {
  action: ProxyAction;
  /** Why, for a 403 body and the logs. */
  reason: string;
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
    return hostMatches(this.allow.filter((p) => p.port !== undefined || port === "443"), hostname, port);
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
      return { action: "refuse", reason: `host ${url.host} is not on this proxy's allowed hosts (kiln peer --proxy-allow-host)` };
    }
    const matched = this.rules.find((r) => r.re.test(url.toString()));
    if (matched?.rule.action === "refuse") return { action: "refuse", reason: `proxy rule ${JSON.stringify(matched.rule.regex)} refuses this URL` };
    // Only whole-object GETs can be served from the swarm; the client may opt in or out per request.
    const p2p = useP2P ?? matched?.rule.action === "p2p";
    if (p2p && method === "GET") return { action: "p2p", reason: matched ? `rule ${JSON.stringify(matched.rule.regex)}` : "X-Dragonfly-Use-P2P" };
    return { action: "direct", reason: matched ? `rule ${JSON.stringify(matched.rule.regex)}` : "no rule matched" };
  }
}
