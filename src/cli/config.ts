/** `kiln config containerd|docker|podman`: prints the client configuration that sends image pulls through a peer. */
import type { Command } from "commander";
import { PORTS } from "../common/defaults.js";
import { parseUrl } from "./options.js";
import { StartupError } from "./ports.js";
import { DEFAULT_LOCATION_LABELS, labelLines, locationFromLabels, nodeLabels } from "./node-location.js";
import { containerdSnapshotterToml } from "../snapshotter/containerd-config.js";

export { containerdHostsToml, type ContainerdHostsOptions } from "../common/containerd-hosts.js";
import { containerdHostsToml } from "../common/containerd-hosts.js";
import { registryServer } from "../common/net.js";
import { loadProxyConfigFile } from "../api/proxy-config.js";
import { planHostsDir, syncHostsDir } from "./containerd-hosts-dir.js";

/** Hosts a node's runtime should reach without the proxy (the seed's recommendation). */
export const DEFAULT_NO_PROXY = "localhost,127.0.0.1,127.0.0.0/8,.cluster.local,.svc";

/** A systemd drop-in that sends a service's HTTP(S) traffic through the peer's proxy. */
export function systemdProxyDropIn(service: "containerd" | "docker", peerUrl: string, noProxy = DEFAULT_NO_PROXY): { path: string; content: string } {
  const peer = new URL(peerUrl).origin;
  const content = `${["[Service]", `Environment="HTTP_PROXY=${peer}"`, `Environment="HTTPS_PROXY=${peer}"`, `Environment="NO_PROXY=${noProxy}"`].join("\n")}\n`;
  return { path: `/etc/systemd/system/${service}.service.d/http-proxy.conf`, content };
}

/**
 * A registries.conf drop-in (Podman, Buildah, CRI-O, skopeo) with the peer as
 * the registry's mirror. Mirror requests carry no registry name, so the peer
 * must be started with `--registry` set to the same registry.
 */
export function podmanRegistriesConf(opts: { peer: string; registry: string; insecure?: boolean }): { path: string; content: string; server: string } {
  const peer = new URL(opts.peer);
  const { host, server } = registryServer(opts.registry, opts.insecure);
  const lines = ["[[registry]]", `prefix = "${host}"`, `location = "${host}"`];
  if (server.startsWith("http:")) lines.push("insecure = true");
  lines.push("", "[[registry.mirror]]", `location = "${peer.host}"`, ...(peer.protocol === "http:" ? ["insecure = true"] : []));
  return { path: `/etc/containers/registries.conf.d/kiln-${host.replace(/[^A-Za-z0-9.-]/g, "_")}.conf`, content: `${lines.join("\n")}\n`, server };
}

function print(path: string, notes: string[], content: string, contentOnly?: boolean): void {
  process.stdout.write(contentOnly ? content : [`# ${path}`, ...notes.map((n) => `# ${n}`), content].join("\n"));
}

const peerOption = ["--peer <url>", "the peer's proxy URL", parseUrl, `http://127.0.0.1:${PORTS.peerProxy}`] as const;
const contentOnlyOption = ["--content-only", "print only the file content, without the path comment and setup notes"] as const;

interface ContainerdFlags {
  peer: string;
  registry?: string;
  insecure?: boolean;
  proxy?: boolean;
  directHosts: string;
  contentOnly?: boolean;
  /** Image acceleration: the snapshotter's config fragment instead. */
  snapshotter?: boolean;
  address?: string;
  cri: boolean;
  /** Write one hosts.toml per registry the peer's proxy config allows, under hostsDir. */
  proxyConfig?: string;
  hostsDir?: string;
}

export function registerConfigCommand(program: Command): void {
  const config = program.command("config").description("print client configuration that sends pulls through a kiln peer");
  config
    .command("containerd")
    .description(
      "print a containerd hosts.toml (registry mirror through the peer; without --registry, the _default catch-all for every registry), or with --proxy its http-proxy.conf",
    )
    .option(...peerOption)
    .option("--registry <host>", "registry host (e.g. registry.example.com:5000, docker.io) or URL")
    .option("--insecure", "the registry speaks plain HTTP")
    .option("--proxy", "print containerd's systemd http-proxy.conf (HTTP_PROXY mode) instead of a hosts.toml")
    .option("--direct-hosts <hosts>", "with --proxy, NO_PROXY: hosts containerd reaches without the proxy", DEFAULT_NO_PROXY)
    .option("--snapshotter", "print the config.toml fragment that loads kiln's snapshotter (image acceleration) instead")
    .option("--address <socket>", "with --snapshotter: the snapshotter's socket (kiln snapshotter --address)")
    .option("--no-cri", "with --snapshotter: only register it, do not make it the snapshotter of Kubernetes pods")
    .option(
      "--proxy-config <file>",
      "the peer's proxy config (kiln peer --proxy-config): write a hosts.toml under --hosts-dir for each registry its allowHosts names, and remove those no longer named",
    )
    .option("--hosts-dir <dir>", "with --proxy-config: containerd's hosts directory (its config_path), e.g. /etc/containerd/certs.d")
    .option(...contentOnlyOption)
    .action(async (f: ContainerdFlags) => {
      if (f.proxyConfig) {
        if (!f.hostsDir) throw new StartupError("--proxy-config writes files: give containerd's hosts directory with --hosts-dir");
        const { allowHosts } = await loadProxyConfigFile(f.proxyConfig).catch((err: Error) => {
          throw new StartupError(err.message);
        });
        const report = await syncHostsDir(f.hostsDir, planHostsDir(allowHosts, f.peer), f.peer);
        process.stdout.write(report.map((line) => `${line}\n`).join(""));
        return;
      }
      if (f.snapshotter) {
        const { path, content } = containerdSnapshotterToml({ address: f.address, cri: f.cri });
        const notes = [
          "merge into containerd's config (version 2), then: systemctl restart containerd",
          "kiln snapshotter must run on the node: kiln snapshotter --shared <dir>",
        ];
        return print(path, notes, content, f.contentOnly);
      }
      if (f.proxy) {
        const { path, content } = systemdProxyDropIn("containerd", f.peer, f.directHosts);
        return print(path, proxyNotes("containerd"), content, f.contentOnly);
      }
      const { path, content } = containerdHostsToml({ peer: f.peer, registry: f.registry, insecure: f.insecure });
      print(
        path,
        [
          "containerd reads it when its registry config_path is /etc/containerd/certs.d",
          '([plugins."io.containerd.grpc.v1.cri".registry] config_path, or ctr --hosts-dir).',
        ],
        content,
        f.contentOnly,
      );
    });
  config
    .command("docker")
    .description("print Docker's systemd http-proxy.conf: pulls go through the peer's proxy (HTTP_PROXY/HTTPS_PROXY)")
    .option(...peerOption)
    .option("--direct-hosts <hosts>", "NO_PROXY: hosts Docker reaches without the proxy", DEFAULT_NO_PROXY)
    .option(...contentOnlyOption)
    .action((f: { peer: string; directHosts: string; contentOnly?: boolean }) => {
      const { path, content } = systemdProxyDropIn("docker", f.peer, f.directHosts);
      print(path, proxyNotes("docker"), content, f.contentOnly);
    });
  config
    .command("podman")
    .description("print a registries.conf drop-in that makes the peer the registry's mirror (Podman, Buildah, CRI-O, skopeo)")
    .option(...peerOption)
    .requiredOption("--registry <host>", "registry host (e.g. registry.example.com:5000, docker.io) or URL")
    .option("--insecure", "the registry speaks plain HTTP")
    .option(...contentOnlyOption)
    .action((f: { peer: string; registry: string; insecure?: boolean; contentOnly?: boolean }) => {
      const { path, content, server } = podmanRegistriesConf(f);
      print(
        path,
        [
          `The peer must mirror this registry: kiln peer --registry ${server} (one registry per peer;`,
          "for several, use HTTP_PROXY/HTTPS_PROXY with the peer's proxy instead).",
        ],
        content,
        f.contentOnly,
      );
    });
  config
    .command("labels")
    .description(
      "print this Kubernetes node's labels, key=value per line, for kiln peer --labels-file (the peer inventory, pull schedules' node selectors); needs get on nodes",
    )
    .option("--node <name>", "the node (default: env NODE_NAME, from the downward API's spec.nodeName)", process.env.NODE_NAME)
    .option("--api-server <url>", "Kubernetes API server (default: the in-cluster one)")
    .option("--token-file <file>", "bearer token (default: the pod's service account token)")
    .option("--ca-file <file>", "CA of the API server (default: the pod's service account CA)")
    .action(async (f: { node?: string; apiServer?: string; tokenFile?: string; caFile?: string }) => {
      if (!f.node) throw new StartupError("--node or NODE_NAME is required");
      // Labels help select nodes; a peer without them still works.
      const labels = await nodeLabels(f.node, f).catch((err: Error) => {
        process.stderr.write(`kiln config labels: no labels for node ${f.node}: ${err.message}\n`);
        return {};
      });
      const { lines, skipped } = labelLines(labels);
      for (const s of skipped) process.stderr.write(`kiln config labels: skipped ${s}\n`);
      process.stdout.write(lines.map((l) => `${l}\n`).join(""));
    });
  config
    .command("location")
    .description("print this Kubernetes node's location (region|zone from its labels) for kiln peer --location; needs get on nodes")
    .option("--node <name>", "the node (default: env NODE_NAME, from the downward API's spec.nodeName)", process.env.NODE_NAME)
    .option("--labels <keys>", "node labels, most general first, joined with |", DEFAULT_LOCATION_LABELS.join(","))
    .option("--api-server <url>", "Kubernetes API server (default: the in-cluster one)")
    .option("--token-file <file>", "bearer token (default: the pod's service account token)")
    .option("--ca-file <file>", "CA of the API server (default: the pod's service account CA)")
    .action(async (f: { node?: string; labels: string; apiServer?: string; tokenFile?: string; caFile?: string }) => {
      if (!f.node) throw new StartupError("--node or NODE_NAME is required");
      // Location is a preference of the scheduler, not a condition to run: a peer without one still works.
      const labels = await nodeLabels(f.node, f).catch((err: Error) => {
        process.stderr.write(`kiln config location: no location for node ${f.node}: ${err.message}\n`);
        return {};
      });
      process.stdout.write(
        `${locationFromLabels(
          labels,
          f.labels
            .split(",")
            .map((k) => k.trim())
            .filter(Boolean),
        )}\n`,
      );
    });
}

function proxyNotes(service: string): string[] {
  return [
    `then: systemctl daemon-reload && systemctl restart ${service}`,
    "The peer forwards only hosts it allows (kiln peer --proxy-allow-host <registry>).",
    "HTTPS registries: add --proxy-intercept <registry> and trust `kiln ca export`, or blobs are tunnelled without P2P.",
  ];
}
