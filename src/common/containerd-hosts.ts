/** containerd's hosts.toml that sends a registry's pulls (or every registry's) through a peer: `kiln config containerd` and the peer's own image import. */
import { registryServer } from "./net.js";

export interface ContainerdHostsOptions {
  /** The peer's proxy, e.g. http://127.0.0.1:4001. */
  peer: string;
  /** Registry host (`registry.example.com:5000`, `docker.io`) or URL; absent → the `_default` catch-all. */
  registry?: string;
  /** Reach a registry given without a scheme over plain HTTP. */
  insecure?: boolean;
  /** Sent with every request to the peer (the peer's own import puts a private registry's Authorization here). */
  headers?: Record<string, string>;
}

function headerLines(peer: string, headers: Record<string, string>): string[] {
  const entries = Object.entries(headers);
  if (!entries.length) return [];
  return [`  [host."${peer}".header]`, ...entries.map(([k, v]) => `    ${k} = [${JSON.stringify(v)}]`)];
}

/** containerd's hosts.toml for one registry (or `_default`), with its path under /etc/containerd/certs.d. */
export function containerdHostsToml(opts: ContainerdHostsOptions): { path: string; content: string } {
  const peer = new URL(opts.peer).origin;
  const lines: string[] = [];
  let dir = "_default";
  if (opts.registry) {
    const { host, server } = registryServer(opts.registry, opts.insecure);
    dir = host;
    lines.push(
      `server = "${server}"`,
      "",
      `[host."${peer}"]`,
      '  capabilities = ["pull", "resolve"]',
      ...headerLines(peer, { "X-Dragonfly-Registry": server, ...opts.headers }),
    );
  } else {
    // No server: containerd falls back to the registry the image names, and tells the peer with ?ns=<registry>.
    lines.push(`[host."${peer}"]`, '  capabilities = ["pull", "resolve"]', ...headerLines(peer, opts.headers ?? {}));
  }
  return { path: `/etc/containerd/certs.d/${dir}/hosts.toml`, content: `${lines.join("\n")}\n` };
}
