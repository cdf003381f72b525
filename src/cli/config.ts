/** `kiln config containerd`: prints the client configuration that sends image pulls through a peer. */
import type { Command } from "commander";
import { PORTS } from "../common/defaults.js";
import { parseUrl } from "./options.js";
import { registryServer } from "../common/net.js";

export interface ContainerdHostsOptions {
  /** The peer's proxy, e.g. http://127.0.0.1:4001. */
  peer: string;
  /** Registry host (`registry.example.com:5000`, `docker.io`) or URL; absent → the `_default` catch-all. */
  registry?: string;
  /** Reach a registry given without a scheme over plain HTTP. */
  insecure?: boolean;
}

/** containerd's hosts.toml for one registry (or `_default`), with its path under /etc/containerd/certs.d. */
export function containerdHostsToml(opts: ContainerdHostsOptions): { path: string; content: string } {
  const peer = new URL(opts.peer).origin;
  const lines: string[] = [];
  let dir = "_default";
  if (opts.registry) {
    const { host, server } = registryServer(opts.registry, opts.insecure);
    dir = host;
    lines.push(`server = "${server}"`, "", `[host."${peer}"]`, '  capabilities = ["pull", "resolve"]', `  [host."${peer}".header]`, `    X-Dragonfly-Registry = ["${server}"]`);
  } else {
    // No server: containerd falls back to the registry the image names, and tells the peer with ?ns=<registry>.
    lines.push(`[host."${peer}"]`, '  capabilities = ["pull", "resolve"]');
  }
  return { path: `/etc/containerd/certs.d/${dir}/hosts.toml`, content: lines.join("\n") + "\n" };
}

export function registerConfigCommand(program: Command): void {
  const config = program.command("config").description("print client configuration that sends pulls through a kiln peer");
  config
    .command("containerd")
    .description("print a containerd hosts.toml (registry mirror through the peer); without --registry, the _default catch-all for every registry")
    .option("--peer <url>", "the peer's proxy URL", parseUrl, `http://127.0.0.1:${PORTS.peerProxy}`)
    .option("--registry <host>", "registry host (e.g. registry.example.com:5000, docker.io) or URL")
    .option("--insecure", "the registry speaks plain HTTP")
    .option("--content-only", "print only the file content, without the path comment and setup notes")
    .action((f: { peer: string; registry?: string; insecure?: boolean; contentOnly?: boolean }) => {
      const { path, content } = containerdHostsToml({ peer: f.peer, registry: f.registry, insecure: f.insecure });
      if (f.contentOnly) return void process.stdout.write(content);
      process.stdout.write(
        [
          `# ${path}`,
          `# containerd reads it when its registry config_path is /etc/containerd/certs.d`,
          `# ([plugins."io.containerd.grpc.v1.cri".registry] config_path, or ctr --hosts-dir).`,
          content,
        ].join("\n"),
      );
    });
}
