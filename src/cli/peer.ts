import { InvalidArgumentError, type Command } from "commander";
import { DEFAULT_CONTAINERD_SOCKET, PEER, PORTS, SCHEDULER } from "../common/defaults.js";
import { defaultPeerConfig, startPeer } from "../peer/index.js";
import { parseBytes, parsePort, parsePositiveInt } from "./options.js";
import { stopOnSignal } from "./signals.js";
import { assertPortsFree } from "./ports.js";
import { assertSecretsSet, clusterSecretFromEnv, requireSecretOption } from "./cluster-secret.js";
import { addProxyOptions, proxyPolicyFrom, registryMirrorFrom, staleTagsFrom, type ProxyFlags } from "./proxy-options.js";
import { createLogger } from "../common/logger.js";
import { ManagerMembershipClient, startManagerKeepAlive } from "../api/manager-client.js";
import { HostAnnounce } from "../api/scheduler.js";
import { Labels } from "../api/peers.js";
import { access, constants, readFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseLabelLines } from "./node-location.js";

/** The containerd socket to import into: as given, none, or (auto) the node's default one when this process can use it. */
async function containerdSocket(flag: string, ctr: string): Promise<string | undefined> {
  if (flag === "none") return undefined;
  if (flag !== "auto") return flag;
  const usable = await access(DEFAULT_CONTAINERD_SOCKET, constants.W_OK).then(
    () => true,
    () => false,
  );
  if (!usable) return undefined;
  const found = await promisify(execFile)(ctr, ["--version"], { timeout: 5_000 }).then(
    () => true,
    () => false,
  );
  return found ? DEFAULT_CONTAINERD_SOCKET : undefined;
}

/** `zone=a` → { zone: "a" }, checked as the inventory checks labels. */
function parseLabel(value: string, previous: Labels): Labels {
  const i = value.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`a label is key=value, got ${JSON.stringify(value)}`);
  const parsed = Labels.safeParse({ ...previous, [value.slice(0, i)]: value.slice(i + 1) });
  if (!parsed.success) throw new InvalidArgumentError(`${value}: ${parsed.error.issues[0]?.message ?? "invalid label"}`);
  return parsed.data;
}

interface PeerFlags extends ProxyFlags {
  seed?: boolean;
  spreadReceivers: number;
  spreadIdleMs: number;
  scheduler: string;
  dataDir?: string;
  host: string;
  advertiseIp?: string;
  hostname?: string;
  port?: number;
  proxyPort?: number;
  metricsPort?: number;
  location: string;
  idc: string;
  label: Labels;
  labelsFile?: string;
  accelerateShared?: string;
  containerdAddress: string;
  containerdNamespace: string;
  ctr: string;
  containerdSnapshotter?: string;
  uploadConcurrency: number;
  uploadRate: number;
  pieceStallMs: number;
  fallbackMs: number;
  originIdleTimeoutMs: number;
  originResumes: number;
  gcTtl: number;
  gcHigh: number;
  gcLow: number;
  gcQuota?: number;
  gcIntervalMs: number;
  residentTasks: number;
  keepaliveMs?: number;
  schedulersRefreshMs: number;
  manager?: string;
  clusterId?: number;
  requireSecret?: boolean;
}

export function registerPeerCommand(program: Command): void {
  const cmd = program
    .command("peer")
    .description("run a peer (or, with --seed, a seed peer that fetches from origins)")
    .option("--seed", "run as a seed peer: goes back to source when the scheduler asks; no proxy")
    .option(
      "--scheduler <url>",
      "scheduler URL; several, comma-separated, for a cluster of several schedulers (each task goes to one by hashing its ID)",
      `http://127.0.0.1:${PORTS.scheduler}`,
    )
    .option("--data-dir <dir>", "where task content is stored (default .kiln/peer or .kiln/seed-peer)")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--advertise-ip <ip>", "IP other peers reach this one at (default: first non-loopback IPv4)")
    .option("--hostname <name>", "host name reported to the scheduler")
    .option("--port <port>", `upload port (default ${PORTS.peerUpload}; seed ${PORTS.seedUpload})`, parsePort)
    .option("--proxy-port <port>", `proxy port (default ${PORTS.peerProxy})`, parsePort)
    .option("--metrics-port <port>", `metrics port (default ${PORTS.peerMetrics}; seed ${PORTS.seedMetrics})`, parsePort)
    .option("--location <loc>", "location, e.g. region|zone, preferred for parents", "")
    .option("--idc <idc>", "data centre, preferred for parents", "")
    .option("--label <key=value>", "a label of this host in the manager's peer inventory, e.g. zone=a (repeatable)", parseLabel, {})
    .option(
      "--containerd-address <socket>",
      "the node's containerd, into which pull schedules import their images through this peer; auto: /run/containerd/containerd.sock when it is there, writable, and ctr is found; none: never",
      "auto",
    )
    .option("--containerd-namespace <ns>", "containerd namespace images are imported into", "k8s.io")
    .option("--ctr <path>", "containerd's ctr client", "ctr")
    .option("--containerd-snapshotter <name>", "snapshotter imported images are unpacked for (default: containerd's)")
    .option(
      "--accelerate-shared <dir>",
      "image acceleration's shared directory: label this host kiln.io/accelerate=true while its snapshotter reports there (node name = --hostname)",
    )
    .option("--labels-file <file>", "more labels, key=value per line (kiln config labels writes the node's); --label wins")
    .option("--upload-concurrency <n>", "concurrent piece uploads", parsePositiveInt, PEER.uploadConcurrency)
    .option("--upload-rate <bytes>", "upload bandwidth limit per second, e.g. 100MiB (0 = unlimited)", parseBytes, PEER.uploadRateBytes)
    .option("--piece-stall-ms <ms>", "retry a piece elsewhere after this long without progress", parsePositiveInt, PEER.pieceStallMs)
    .option(
      "--fallback-ms <ms>",
      "go to the origin after this long without a parent able to serve while the scheduler does not answer (while it does, it decides)",
      parsePositiveInt,
      PEER.noParentFallbackMs,
    )
    .option(
      "--spread-receivers <n>",
      "seed or origin fetcher: children a new piece is announced to first; the rest get it from them",
      parsePositiveInt,
      PEER.spreadFirstReceivers,
    )
    .option(
      "--spread-idle-ms <ms>",
      "seed or origin fetcher: once its uplink has had no piece of a task to send for this long, pieces already sent once are announced to every child",
      parsePositiveInt,
      PEER.spreadIdleReleaseMs,
    )
    .option("--origin-idle-timeout-ms <ms>", "an origin body that sends nothing for this long has stalled", parsePositiveInt, PEER.originIdleTimeoutMs)
    .option("--origin-resumes <n>", "Range requests (with If-Range) made to resume an origin body that broke off", parsePositiveInt, PEER.originResumes)
    .option("--gc-ttl <ms>", "evict tasks not accessed for this long", parsePositiveInt, PEER.taskTtlMs)
    .option("--gc-high <percent>", "start evicting above this disk usage", parsePositiveInt, PEER.gcHighWatermarkPercent)
    .option("--gc-low <percent>", "evict down to this disk usage", parsePositiveInt, PEER.gcLowWatermarkPercent)
    .option("--gc-quota <bytes>", "apply the watermarks to this many bytes instead of the whole filesystem", parseBytes)
    .option("--gc-interval-ms <ms>", "how often garbage collection runs", parsePositiveInt, PEER.gcIntervalMs)
    .option(
      "--resident-tasks <n>",
      "tasks whose metadata is kept in memory; the least recently used beyond this stay on disk and are read back when asked for",
      parsePositiveInt,
      PEER.residentTasks,
    )
    .option(
      "--manager <url>",
      "seed peers: register with this manager and keep alive; peers and seed peers without --scheduler: use the schedulers of the cluster whose scopes match this host (a seed's --cluster-id), as the manager lists them",
    )
    .option("--cluster-id <id>", "seed peers: scheduler cluster to join (default: the manager's default)", parsePositiveInt)
    .option("--keepalive-ms <ms>", "host keepalive interval", parsePositiveInt)
    .option(
      "--schedulers-refresh-ms <ms>",
      "with --manager: how often to ask it for the cluster's schedulers (a new one joins the ranking of new tasks, a gone one's tasks move)",
      parsePositiveInt,
      SCHEDULER.listRefreshMs,
    )
    .option(...requireSecretOption("peer"));
  addProxyOptions(cmd).action(async (f: PeerFlags) => {
    if (f.requireSecret) assertSecretsSet("peer");
    const seed = Boolean(f.seed);
    const proxy = await proxyPolicyFrom(f).catch((err: Error) => cmd.error(`kiln peer: ${err.message}`, { exitCode: 2 }));
    const envToken = process.env.KILN_CONTROL_TOKEN;
    const token = envToken ? HostAnnounce.shape.controlToken.safeParse(envToken) : undefined;
    if (token && !token.success) cmd.error(`kiln peer: KILN_CONTROL_TOKEN: ${token.error.issues[0]?.message ?? "invalid"}`, { exitCode: 2 });
    const fileLabels = f.labelsFile
      ? await readFile(f.labelsFile, "utf8")
          .then(parseLabelLines)
          .catch((err: Error) => cmd.error(`kiln peer: --labels-file ${f.labelsFile}: ${err.message}`, { exitCode: 2 }))
      : {};
    const containerdAddress = seed ? undefined : await containerdSocket(f.containerdAddress, f.ctr);
    const base = defaultPeerConfig();
    const hostname = f.hostname ?? base.hostname;
    const advertiseIp = f.advertiseIp ?? base.advertiseIp;
    // --scheduler a,b,c: a cluster of several schedulers, each task on one (peer/scheduler-ring.ts).
    let schedulerUrls = f.scheduler
      .split(",")
      .map((u) => u.trim())
      .filter(Boolean);
    let schedulerList: (() => Promise<string[]>) | undefined;
    if (f.manager && cmd.getOptionValueSource("scheduler") === "default") {
      const manager = new ManagerMembershipClient(f.manager, clusterSecretFromEnv());
      const query = { hostname, ip: advertiseIp, idc: f.idc, location: f.location, ...(seed && f.clusterId ? { scheduler_cluster_id: f.clusterId } : {}) };
      const found = await manager
        .searchSchedulers(query)
        .catch((err: Error) => cmd.error(`kiln peer: --manager ${f.manager}: cannot find a scheduler: ${err.message}`, { exitCode: 1 }));
      if (!found.schedulers.length) return cmd.error(`kiln peer: scheduler cluster ${found.scheduler_cluster_name} has no active scheduler`, { exitCode: 1 });
      schedulerUrls = found.schedulers.map((s) => s.url);
      // The cluster's schedulers as the manager lists them now: a new one joins the ranking, a gone one leaves it.
      schedulerList = async () => (await manager.searchSchedulers(query)).schedulers.map((s) => s.url);
      createLogger("peer").info(
        {
          event: "scheduler-chosen",
          cluster: found.scheduler_cluster_name,
          clusterId: found.scheduler_cluster_id,
          scheduler: schedulerUrls[0],
          schedulers: schedulerUrls,
        },
        "scheduler cluster chosen by its scopes",
      );
    }
    const schedulerUrl = schedulerUrls[0] ?? f.scheduler;
    const cfg = defaultPeerConfig({
      seed,
      schedulerUrl,
      schedulerUrls,
      ...(schedulerList ? { schedulerList, schedulerListRefreshMs: f.schedulersRefreshMs } : {}),
      clusterSecret: clusterSecretFromEnv(),
      dataDir: f.dataDir ?? (seed ? ".kiln/seed-peer" : ".kiln/peer"),
      listenHost: f.host,
      advertiseIp,
      hostname,
      uploadPort: f.port ?? (seed ? PORTS.seedUpload : PORTS.peerUpload),
      proxyPort: seed ? null : (f.proxyPort ?? PORTS.peerProxy),
      metricsPort: f.metricsPort ?? (seed ? PORTS.seedMetrics : PORTS.peerMetrics),
      location: f.location,
      idc: f.idc,
      labels: { ...fileLabels, ...f.label },
      ...(f.accelerateShared ? { accelerateShared: f.accelerateShared } : {}),
      ...(containerdAddress
        ? {
            containerd: {
              address: containerdAddress,
              namespace: f.containerdNamespace,
              ctr: f.ctr,
              ...(f.containerdSnapshotter ? { snapshotter: f.containerdSnapshotter } : {}),
            },
          }
        : {}),
      uploadConcurrency: f.uploadConcurrency,
      uploadRateBytes: f.uploadRate,
      // A fixed token (several peers behind one address, tests); random per start otherwise.
      controlToken: token?.data ?? base.controlToken,
      proxy,
      registryMirror: registryMirrorFrom(f),
      accessCheckTtlMs: f.accessCheckTtlMs,
      staleTags: staleTagsFrom(f),
      prefetchLayers: f.prefetchLayers,
      caDir: f.caDir,
      gc: { intervalMs: f.gcIntervalMs, taskTtlMs: f.gcTtl, highWatermarkPercent: f.gcHigh, lowWatermarkPercent: f.gcLow, quotaBytes: f.gcQuota },
      residentTasks: f.residentTasks,
      download: {
        ...base.download,
        pieceStallMs: f.pieceStallMs,
        noParentFallbackMs: f.fallbackMs,
        originIdleTimeoutMs: f.originIdleTimeoutMs,
        originResumes: f.originResumes,
      },
      spread: { ...base.spread, firstReceivers: f.spreadReceivers, idleReleaseMs: f.spreadIdleMs },
      keepAliveMs: f.keepaliveMs ?? base.keepAliveMs,
    });
    await assertPortsFree(cfg.listenHost, [
      { port: cfg.uploadPort, flag: "--port" },
      ...(cfg.proxyPort !== null ? [{ port: cfg.proxyPort, flag: "--proxy-port" }] : []),
      ...(cfg.metricsPort !== null ? [{ port: cfg.metricsPort, flag: "--metrics-port" }] : []),
    ]);
    const peer = await startPeer(cfg);
    // Seed peers appear in the manager's cluster records.
    const membership =
      seed && f.manager
        ? startManagerKeepAlive({
            managerUrl: f.manager,
            kind: "seed_peer",
            registration: { hostname: cfg.hostname, ip: cfg.advertiseIp, port: peer.uploadPort, scheduler_cluster_id: f.clusterId },
            log: createLogger("seed-peer"),
            secret: cfg.clusterSecret,
          })
        : undefined;
    stopOnSignal(async () => {
      await membership?.stop();
      await peer.close();
    });
  });
}
