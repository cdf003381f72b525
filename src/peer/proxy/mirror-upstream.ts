/** Registry mirror mode: which upstream registry a `/v2/...` request is for. */
import { KilnError } from "../../common/errors.js";
import { registryServer } from "../../common/net.js";

/** A registry named without a scheme: `host`, `host:port`, `[v6]:port`. */
const HOST_PORT = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:\d{1,5})?$/i;

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
  if (header) return registryOrigin(header, "the X-Dragonfly-Registry header", cfg);
  if (ns) return registryOrigin(ns, "the ns= query parameter", cfg);
  if (cfg.defaultRegistry) return registryOrigin(cfg.defaultRegistry, "--registry", cfg);
  const fix = "send X-Dragonfly-Registry or ?ns=<host>, or start the peer with --registry <url>";
  throw new KilnError("BAD_REQUEST", `registry mirror request names no registry: ${fix}`);
}

/** An `http(s)://` URL or a `host[:port]` → the registry's origin; `source` names where it came from in a 400. */
function registryOrigin(raw: string, source: string, cfg: RegistryMirrorOptions): string {
  const invalid = (why: string) => new KilnError("BAD_REQUEST", `invalid registry ${JSON.stringify(raw)} in ${source}: ${why}`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== "http" && scheme !== "https") throw invalid(`a registry is reached over http:// or https://, not ${scheme}://`);
  if (scheme === undefined && !HOST_PORT.test(raw)) throw invalid("give an http(s):// URL or a host[:port]");
  let u: URL;
  try {
    u = new URL(scheme ? raw : registryUrlForHost(raw, cfg));
  } catch {
    throw invalid("not a URL");
  }
  return u.origin;
}

/** `host[:port]` → URL: the default registry's scheme when it is that host, else plain HTTP for loopback or --registry-insecure, else HTTPS. */
function registryUrlForHost(host: string, cfg: RegistryMirrorOptions): string {
  if (cfg.defaultRegistry && registryServer(cfg.defaultRegistry).host === host) return new URL(cfg.defaultRegistry).origin;
  return registryServer(host, cfg.insecure).server;
}
