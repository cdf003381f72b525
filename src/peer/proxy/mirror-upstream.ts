/** Registry mirror mode: which upstream registry a `/v2/...` request is for. */
import { KilnError } from "../../common/errors.js";
import { registryServer } from "../../common/net.js";

export interface RegistryMirrorOptions {
  /** Upstream for mirror requests that name none (no X-Dragonfly-Registry header, no `ns=`), e.g. `https://registry.example.com`. */
  defaultRegistry?: string;
  /** Reach registries named by `ns=` over plain HTTP (loopback hosts always are). */
  insecure?: boolean;
}

/**
 * The upstream's origin (`https://registry.example.com`): the X-Dragonfly-Registry
 * header (`named`), else containerd's `ns=` host, else the configured default.
 */
export function mirrorUpstream(named: string | undefined, ns: string | undefined, cfg: RegistryMirrorOptions): string {
  const header = named?.trim() || undefined;
  const raw = header ?? (ns ? registryUrlForHost(ns, cfg) : cfg.defaultRegistry);
  if (!raw) {
    const fix = "send X-Dragonfly-Registry or ?ns=<host>, or start the peer with --registry <url>";
    throw new KilnError("BAD_REQUEST", `registry mirror request names no registry: ${fix}`);
  }
  const withScheme = /^https?:\/\//i.test(raw) ? raw : registryUrlForHost(raw, cfg);
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
function registryUrlForHost(host: string, cfg: RegistryMirrorOptions): string {
  if (cfg.defaultRegistry && registryServer(cfg.defaultRegistry).host === host) return new URL(cfg.defaultRegistry).origin;
  return registryServer(host, cfg.insecure).server;
}
