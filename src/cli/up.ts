/** `kiln up`: the all-in-one cluster in one process (scheduler, seed peer, peer, manager). */
import { join } from "node:path";
import type { Command } from "commander";
import { DEFAULT_CA_DIR, PORTS, SCHEDULER } from "../common/defaults.js";
import { createLogger } from "../common/logger.js";
import { startManager } from "../manager/index.js";
import { startManagerKeepAlive } from "../api/manager-client.js";
import { clusterConfigApplier, startScheduler } from "../scheduler/index.js";
import { defaultPeerConfig, startPeer } from "../peer/index.js";
import { parsePort } from "./options.js";
import { stopOnSignal } from "./signals.js";
import { assertPortsFree } from "./ports.js";
import { loadOrCreateClusterSecret } from "./cluster-secret.js";
import { addProxyOptions, proxyPolicyFrom, registryMirrorFrom, staleTagsFrom, type ProxyFlags } from "./proxy-options.js";

interface UpFlags extends ProxyFlags {
  dataDir: string;
  host: string;
  advertiseIp?: string;
  schedulerPort: number;
  managerPort: number;
  peerPort: number;
  proxyPort: number;
  metricsPort: number;
  seedPort: number;
  seedMetricsPort: number;
}

export function registerUpCommand(program: Command): void {
  const cmd = program
    .command("up")
    .description("run the all-in-one cluster: manager, scheduler, one seed peer and one peer")
    .option("--data-dir <dir>", "base directory for all state", ".kiln")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--advertise-ip <ip>", "IP other peers reach this node at")
    .option("--scheduler-port <port>", "scheduler port", parsePort, PORTS.scheduler)
    .option("--manager-port <port>", "manager port", parsePort, PORTS.manager)
    .option("--peer-port <port>", "the peer's upload port", parsePort, PORTS.peerUpload)
    .option("--proxy-port <port>", "the peer's proxy / registry mirror port", parsePort, PORTS.peerProxy)
    .option("--metrics-port <port>", "the peer's metrics port", parsePort, PORTS.peerMetrics)
    .option("--seed-port <port>", "the seed peer's upload port", parsePort, PORTS.seedUpload)
    .option("--seed-metrics-port <port>", "the seed peer's metrics port", parsePort, PORTS.seedMetrics);
  addProxyOptions(cmd).action(async (f: UpFlags) => {
    const proxy = await proxyPolicyFrom(f).catch((err: Error) => cmd.error(`kiln up: ${err.message}`, { exitCode: 2 }));
    // Before anything is created: a taken port must not cost the one printing of root's password.
    await assertPortsFree(f.host, [
      { port: f.managerPort, flag: "--manager-port" },
      { port: f.schedulerPort, flag: "--scheduler-port" },
      { port: f.peerPort, flag: "--peer-port" },
      { port: f.proxyPort, flag: "--proxy-port" },
      { port: f.metricsPort, flag: "--metrics-port" },
      { port: f.seedPort, flag: "--seed-port" },
      { port: f.seedMetricsPort, flag: "--seed-metrics-port" },
    ]);
    // Peers on other machines join with this secret; nobody else may use the scheduler.
    const secretFile = join(f.dataDir, "cluster-secret");
    const clusterSecret = await loadOrCreateClusterSecret(secretFile);
    const manager = await startManager({
      host: f.host,
      port: f.managerPort,
      dataDir: join(f.dataDir, "manager"),
      rootPassword: process.env.KILN_ROOT_PASSWORD || undefined,
      clusterSecret,
    });
    const scheduler = await startScheduler({ host: f.host, port: f.schedulerPort, clusterSecret });
    const base = defaultPeerConfig();
    const common = {
      schedulerUrl: scheduler.url,
      clusterSecret,
      listenHost: f.host,
      advertiseIp: f.advertiseIp ?? base.advertiseIp,
    };
    const seed = await startPeer(
      defaultPeerConfig({
        ...common,
        seed: true,
        dataDir: join(f.dataDir, "seed-peer"),
        uploadPort: f.seedPort,
        proxyPort: null,
        metricsPort: f.seedMetricsPort,
        hostname: `${base.hostname}-seed`,
      }),
    );
    const peer = await startPeer(
      defaultPeerConfig({
        ...common,
        dataDir: join(f.dataDir, "peer"),
        uploadPort: f.peerPort,
        proxyPort: f.proxyPort,
        metricsPort: f.metricsPort,
        proxy,
        registryMirror: registryMirrorFrom(f),
        accessCheckTtlMs: f.accessCheckTtlMs,
        staleTags: staleTagsFrom(f),
        prefetchLayers: f.prefetchLayers,
        caDir: f.caDir === DEFAULT_CA_DIR ? join(f.dataDir, "ca") : f.caDir,
      }),
    );
    const managerUrl = `http://127.0.0.1:${manager.port}`;
    const log = createLogger("up");
    const memberships = [
      startManagerKeepAlive({
        managerUrl,
        kind: "scheduler",
        registration: { hostname: base.hostname, ip: "127.0.0.1", port: scheduler.port },
        log,
        secret: clusterSecret,
        onClusterConfig: clusterConfigApplier(scheduler.service, log),
        hostsReport: { snapshot: () => scheduler.service.hostsReport(), everyMs: SCHEDULER.hostsReportMs },
      }),
      startManagerKeepAlive({
        managerUrl,
        kind: "seed_peer",
        registration: { hostname: `${base.hostname}-seed`, ip: "127.0.0.1", port: seed.uploadPort },
        log,
        secret: clusterSecret,
      }),
    ];
    const rows = [
      ["manager", `${managerUrl}  (console /, Open API /oapi/v1)`, join(f.dataDir, "manager")],
      ["scheduler", scheduler.url, "hosts, tasks, parent selection"],
      ["seed peer", `upload :${seed.uploadPort}, metrics :${seed.metricsPort}`, join(f.dataDir, "seed-peer")],
      ["peer", `upload :${peer.uploadPort}, proxy :${peer.proxyPort}, metrics :${peer.metricsPort}`, join(f.dataDir, "peer")],
    ];
    process.stderr.write(
      "\nkiln is up (all-in-one)\n\n" +
        rows.map(([a, b, c]) => `  ${a!.padEnd(10)} ${b!.padEnd(52)} ${c}`).join("\n") +
        `\n\n  try: kiln get <url> -O <file>     (through the peer proxy at http://127.0.0.1:${peer.proxyPort})\n` +
        `  more peers join with: KILN_CLUSTER_SECRET=$(cat ${secretFile}) kiln peer --scheduler http://<this host>:${scheduler.port}\n` +
        (peer.proxyAllowHosts.length
          ? `  the proxy reaches: ${peer.proxyAllowHosts.join(", ")}\n\n`
          : "  the proxy reaches no host yet: add --proxy-allow-host <registry> to pull images through it\n\n"),
    );
    stopOnSignal(async () => {
      await Promise.all(memberships.map((m) => m.stop()));
      await peer.close();
      await seed.close();
      await scheduler.close();
      await manager.close();
    });
  });
}
