/** The proxy flags `kiln peer` and `kiln up` share, and the policy they make. */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { DEFAULT_CA_DIR, DEFAULT_PROXY_FILTER, PROXY } from "../common/defaults.js";
import { DEFAULT_PROXY_RULES, HostPattern, loadProxyConfigFile, type ProxyPolicyOptions } from "../api/proxy-config.js";
import { collect, parsePositiveInt, parseUrl } from "./options.js";

export interface ProxyFlags {
  proxyConfig?: string;
  proxyAllowHost: string[];
  proxyIntercept: string[];
  defaultFilter?: string;
  registry?: string;
  registryInsecure?: boolean;
  caDir: string;
  accessCheckTtlMs: number;
  staleTags: boolean;
  staleTagMaxAgeMs: number;
  tagTimeoutMs: number;
  prefetchLayers: boolean;
}

function hostPattern(value: string, previous: string[]): string[] {
  const parsed = HostPattern.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(`${JSON.stringify(value)}: ${parsed.error.issues[0]?.message ?? "invalid host"}`);
  return collect(parsed.data, previous);
}

export function addProxyOptions(cmd: Command): Command {
  return cmd
    .option("--proxy-config <file>", "proxy rules file (YAML): allowHosts, rules [{regex, action: p2p|direct|refuse}], interceptHosts, defaultFilter")
    .option("--proxy-allow-host <host>", "a host the proxy may reach (host, host:port, *.domain; * = open proxy); repeatable", hostPattern, [])
    .option("--proxy-intercept <host>", "terminate CONNECT to this host with kiln's CA so its blobs go through P2P; repeatable", hostPattern, [])
    .option("--default-filter <params>", `query parameters left out of task IDs (default ${DEFAULT_PROXY_FILTER})`)
    .option("--registry <url>", "registry mirror: upstream for /v2/ requests that name none (no X-Dragonfly-Registry, no ?ns=); always allowed", parseUrl)
    .option("--registry-insecure", "registry mirror: reach registries named by ?ns= over plain HTTP")
    .option("--ca-dir <dir>", "where kiln's interception CA is kept (created on first use)", DEFAULT_CA_DIR)
    .option(
      "--access-check-ttl-ms <ms>",
      "content that needed credentials at its origin: how long the origin's yes or no to a client's credentials is remembered",
      parsePositiveInt,
      PROXY.accessCheckTtlMs,
    )
    .option(
      "--stale-tags",
      "while a registry fails (no connection, no answer in time, 5xx, 429), answer a manifest request by tag from its last answer, marked stale",
      PROXY.staleTags,
    )
    .option("--no-stale-tags", "never answer a tag from memory: a failing registry's failure is what the client gets")
    .option(
      "--stale-tag-max-age-ms <ms>",
      "while the registry fails, answer a tag from memory only if the registry gave that answer at most this long ago (0: any age)",
      parsePositiveInt,
      PROXY.staleTagMaxAgeMs,
    )
    .option(
      "--tag-timeout-ms <ms>",
      "a registry that has not answered a manifest request by tag within this long has failed",
      parsePositiveInt,
      PROXY.tagTimeoutMs,
    )
    .option(
      "--prefetch-layers",
      "when an image manifest goes through the proxy, start downloading its config and layers through the swarm at once",
      PROXY.prefetchLayers,
    )
    .option("--no-prefetch-layers", "download a blob only when a client asks for it");
}

/** Stale-tag answers as the flags set them; null when switched off. */
export function staleTagsFrom(f: ProxyFlags): { maxAgeMs: number; timeoutMs: number } | null {
  return f.staleTags ? { maxAgeMs: f.staleTagMaxAgeMs, timeoutMs: f.tagTimeoutMs } : null;
}

/** Flags over the config file over the defaults; host lists are merged. */
export async function proxyPolicyFrom(f: ProxyFlags): Promise<ProxyPolicyOptions> {
  const file = f.proxyConfig ? await loadProxyConfigFile(f.proxyConfig) : undefined;
  return {
    allowHosts: [...(file?.allowHosts ?? []), ...f.proxyAllowHost],
    rules: file?.rules ?? DEFAULT_PROXY_RULES,
    interceptHosts: [...(file?.interceptHosts ?? []), ...f.proxyIntercept],
    defaultFilter: f.defaultFilter ?? file?.defaultFilter ?? DEFAULT_PROXY_FILTER,
  };
}

export function registryMirrorFrom(f: ProxyFlags): { defaultRegistry?: string; insecure: boolean } {
  return { ...(f.registry ? { defaultRegistry: f.registry } : {}), insecure: Boolean(f.registryInsecure) };
}
