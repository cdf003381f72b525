/**
 * What a peer's proxy may do, as its operator writes it (`kiln peer --proxy-config
 * file.yaml`, `--proxy-allow-host`, ...): allowed hosts, rules, intercepted hosts.
 * The peer compiles it into a ProxyPolicy (peer/proxy/rules.ts).
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { DEFAULT_PROXY_FILTER } from "../common/defaults.js";
import { KilnError } from "../common/errors.js";
import { blobUrlPattern, manifestByDigestUrlPattern } from "../common/oci.js";
import { compilesAsRegExp } from "./common.js";

export const ProxyAction = z.enum(["p2p", "direct", "refuse"]);
export type ProxyAction = z.infer<typeof ProxyAction>;

const Regex = z.string().min(1).refine(compilesAsRegExp, "not a valid regular expression");

/**
 * `registry.example.com` (any port), `registry.example.com:5000`, `*.example.com`
 * (subdomains, any port), `10.0.0.7`, `[::1]:5000`, or `*` (every host: an open proxy).
 */
export const HostPattern = z
  .string()
  .trim()
  .min(1)
  .regex(/^(\*|(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?)$/, "expected host, host:port, *.domain or *");

/** The first rule whose regex matches the full URL decides; no match means `direct`. */
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

/**
 * Registry blob downloads and manifests by digest, whose digest kiln verifies, go
 * through P2P; everything else allowed is forwarded as is (manifests by tag too, which
 * are remembered for when the registry fails). The patterns come from common/oci.ts,
 * so they match exactly the URLs the proxy answers with their digest.
 */
export const DEFAULT_PROXY_RULES: readonly ProxyRule[] = [
  { regex: blobUrlPattern(), action: "p2p" },
  { regex: manifestByDigestUrlPattern(), action: "p2p" },
];

/** A proxy's effective settings: flags over the config file over the defaults. */
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
