/** Starts a peer (or seed peer): storage, engine, upload/proxy/metrics servers, host keepalive, GC. */
import os from "node:os";
import { randomBytes } from "node:crypto";
import { KilnError } from "../common/errors.js";
import { ACCELERATE_NODE_LABEL, DEFAULT_CA_DIR, KILN_VERSION, PEER, PORTS, PROXY, SCHEDULER, SNAPSHOTTER } from "../common/defaults.js";
import { readNodeReport } from "../accelerate/state.js";
import { createLogger } from "../common/logger.js";
import { defaultAdvertiseIp } from "../common/net.js";
import { SchedulerRing } from "./scheduler-ring.js";
import type { HostAnnounceInput } from "../api/scheduler.js";
import type { Labels } from "../api/peers.js";
import { PeerEngine } from "./download/engine.js";
import { PeerMetrics } from "./metrics.js";
import { ProxyServer } from "./proxy/server.js";
import type { StaleTagOptions } from "./proxy/manifest-by-tag.js";
import { TagMemory } from "./proxy/tag-memory.js";
import { ProxyPolicy } from "./proxy/rules.js";
import { defaultProxyPolicy, type ProxyPolicyOptions } from "../api/proxy-config.js";
import { Storage, freeDiskBytes, type GcPolicy } from "./storage/storage.js";
import { UploadServer } from "./upload/upload-server.js";
import { UploadMembership } from "./upload/membership.js";
import { ContainerdImporter } from "./containerd-import.js";
import { join } from "node:path";
import type { DownloadOptions } from "./download/session.js";
import { httpPieceSource } from "./download/piece-fetcher.js";
import { httpFeedSource } from "./download/have-feed-client.js";
import { PieceBudget } from "./download/piece-budget.js";
import type { SpreadPolicy } from "./upload/have-feed.js";
import { httpOrigin } from "./download/back-to-source.js";

export interface PeerConfig {
  seed: boolean;
  schedulerUrl: string;
  /** Several schedulers per cluster: all of them (then `schedulerUrl` is not used); each task goes to one by rendezvous hashing (scheduler-ring.ts). */
  schedulerUrls?: string[];
  /** The cluster's schedulers now (the manager's list), asked every SCHEDULER.listRefreshMs. */
  schedulerList?: () => Promise<string[]>;
  /** How often `schedulerList` is asked (default SCHEDULER.listRefreshMs). */
  schedulerListRefreshMs?: number;
  /** The scheduler's cluster secret, when it has one. */
  clusterSecret?: string;
  dataDir: string;
  listenHost: string;
  advertiseIp: string;
  hostname: string;
  uploadPort: number;
  /** Not started when null (seed peers have no proxy). */
  proxyPort: number | null;
  metricsPort: number | null;
  location: string;
  idc: string;
  /** Reported to the inventory (kubernetes-style: zone=a, kubernetes.io/arch=amd64). */
  labels: Labels;
  uploadConcurrency: number;
  uploadRateBytes: number;
  /** Announced to the scheduler, which must present it to trigger a prefetch. */
  controlToken: string;
  /** What the proxy forwards, serves through P2P, intercepts or refuses. */
  proxy: ProxyPolicyOptions;
  /** Registry mirror mode of the proxy: upstream when a request names none, and plain HTTP for `ns=` hosts. */
  registryMirror: { defaultRegistry?: string; insecure: boolean };
  /** Where kiln's interception CA lives (created on first use); needed only with intercepted hosts. */
  caDir: string;
  /** How long an origin's answer to a proxy client's credentials is remembered (content that needed credentials). */
  accessCheckTtlMs: number;
  /** Manifest requests by tag answered from the registry's last answer while it fails (peers with a proxy); null: switched off. */
  staleTags: StaleTagOptions | null;
  /** The proxy downloads an image manifest's config and layers as soon as the manifest is answered. */
  prefetchLayers: boolean;
  gc: GcPolicy & { intervalMs: number };
  /** Tasks whose metadata stays in memory; the rest are read back from disk when asked for. */
  residentTasks: number;
  download: DownloadOptions;
  /** How this peer spreads the pieces of tasks it is a seed or origin fetcher of. */
  spread: SpreadPolicy;
  keepAliveMs: number;
  /** The shared directory of image acceleration: while this node's snapshotter reports there, the peer carries the kiln.io/accelerate label. */
  accelerateShared?: string;
  /** The node's containerd, for pull schedules' image imports (peers with a proxy only). */
  containerd?: { address: string; namespace: string; ctr: string; snapshotter?: string };
}

export function defaultPeerConfig(overrides: Partial<PeerConfig> = {}): PeerConfig {
  return {
    seed: false,
    schedulerUrl: `http://127.0.0.1:${PORTS.scheduler}`,
    dataDir: ".kiln/peer",
    listenHost: "0.0.0.0",
    advertiseIp: defaultAdvertiseIp(),
    hostname: os.hostname(),
    uploadPort: PORTS.peerUpload,
    proxyPort: PORTS.peerProxy,
    metricsPort: PORTS.peerMetrics,
    location: "",
    labels: {},
    idc: "",
    uploadConcurrency: PEER.uploadConcurrency,
    uploadRateBytes: PEER.uploadRateBytes,
    controlToken: randomBytes(32).toString("base64url"),
    proxy: defaultProxyPolicy(),
    registryMirror: { insecure: false },
    caDir: DEFAULT_CA_DIR,
    accessCheckTtlMs: PROXY.accessCheckTtlMs,
    staleTags: PROXY.staleTags ? { maxAgeMs: PROXY.staleTagMaxAgeMs, timeoutMs: PROXY.tagTimeoutMs } : null,
    prefetchLayers: PROXY.prefetchLayers,
    gc: {
      intervalMs: PEER.gcIntervalMs,
      taskTtlMs: PEER.taskTtlMs,
      highWatermarkPercent: PEER.gcHighWatermarkPercent,
      lowWatermarkPercent: PEER.gcLowWatermarkPercent,
    },
    residentTasks: PEER.residentTasks,
    download: {
      concurrentPieces: PEER.concurrentPieces,
      piecesPerParent: PEER.piecesPerParent,
      pieceStallMs: PEER.pieceStallMs,
      noParentFallbackMs: PEER.noParentFallbackMs,
      parentsPerSchedule: PEER.parents,
      originIdleTimeoutMs: PEER.originIdleTimeoutMs,
      originResumes: PEER.originResumes,
    },
    spread: {
      firstReceivers: PEER.spreadFirstReceivers,
      tickMs: PEER.spreadTickMs,
      idleReleaseMs: PEER.spreadIdleReleaseMs,
      forceReleaseMs: PEER.spreadForceReleaseMs,
    },
    keepAliveMs: SCHEDULER.keepAliveMs,
    ...overrides,
  };
}

export interface RunningPeer {
  hostId: string;
  uploadPort: number;
  proxyPort: number | null;
  /** Hosts the proxy may reach (its allow-list, the --registry host included); empty without a proxy. */
  proxyAllowHosts: string[];
  metricsPort: number | null;
  engine: PeerEngine;
  close(): Promise<void>;
}

/** `kiln.io/accelerate: "true"` while this node's snapshotter has reported on the shared directory recently. */
async function accelerateLabel(shared: string | undefined, node: string): Promise<Record<string, string>> {
  if (!shared) return {};
  const own = await readNodeReport(shared, node, SNAPSHOTTER.nodeReportFreshMs);
  return own?.fresh && own.report.node === node ? { [ACCELERATE_NODE_LABEL]: "true" } : {};
}

export async function startPeer(cfg: PeerConfig): Promise<RunningPeer> {
  const component = cfg.seed ? "seed-peer" : "peer";
  const log = createLogger(component);
  const metrics = new PeerMetrics();
  const scheduler = new SchedulerRing({
    urls: cfg.schedulerUrls?.length ? cfg.schedulerUrls : [cfg.schedulerUrl],
    clusterSecret: cfg.clusterSecret,
    log,
    ...(cfg.schedulerList ? { list: cfg.schedulerList, refreshMs: cfg.schedulerListRefreshMs ?? SCHEDULER.listRefreshMs } : {}),
  });
  let engine: PeerEngine | undefined;
  const storage = new Storage(cfg.dataDir, log, (t) => void engine?.evicted(t), { residentTasks: cfg.residentTasks });
  await storage.load();
  metrics.observeStorage(() => ({ tasks: storage.count(), inMemory: storage.countInMemory(), bytes: storage.usedBytes() }));

  // The host ID must be known before the upload port is (port 0 in tests), so bind first.
  const placeholder = "pending";
  // Filled by the first announce reply: until then this peer neither serves nor fetches pieces.
  const membership = new UploadMembership();
  const pieces = httpPieceSource(cfg.download.pieceStallMs, () => membership.credential);
  const ctx = {
    scheduler,
    hostId: placeholder,
    log,
    metrics,
    opts: cfg.download,
    pieces,
    feeds: httpFeedSource(() => membership.credential, { openTimeoutMs: PEER.feedOpenTimeoutMs, openAttempts: PEER.feedOpenAttempts }),
    origin: httpOrigin,
    budget: new PieceBudget(PEER.hostConcurrentPieces),
  };
  engine = new PeerEngine(ctx, storage, log);
  scheduler.reannounce = (only) => engine!.reannounce(only);
  const upload = new UploadServer(storage, engine, metrics, log, {
    concurrency: cfg.uploadConcurrency,
    rateBytesPerSec: cfg.uploadRateBytes,
    controlToken: cfg.controlToken,
    membership,
    seed: cfg.seed,
    spread: cfg.spread,
  });
  const uploadPort = await upload.listen(cfg.listenHost, cfg.uploadPort);
  const hostId = `${cfg.hostname}-${cfg.advertiseIp}-${uploadPort}`.replace(/[^A-Za-z0-9._:-]/g, "_");
  ctx.hostId = hostId;

  let proxy: ProxyServer | undefined;
  let tagMemory: TagMemory | undefined;
  let proxyPort: number | null = null;
  const { defaultRegistry } = cfg.registryMirror;
  // The configured registry is always reachable; every other host must be allowed explicitly.
  const allowHosts = cfg.proxyPort === null ? [] : [...cfg.proxy.allowHosts, ...(defaultRegistry ? [new URL(defaultRegistry).host] : [])];
  if (cfg.proxyPort !== null) {
    const policy = new ProxyPolicy({ ...cfg.proxy, allowHosts });
    if (policy.openProxy) log.warn("proxy allows every host (*): it is an open proxy to anyone who can reach its port");
    // Loaded only where HTTPS is intercepted: the X.509 library is most of a peer's start-up CPU.
    const ca = cfg.proxy.interceptHosts.length ? await (await import("./proxy/ca.js")).CertificateAuthority.loadOrCreate(cfg.caDir) : undefined;
    const { registryMirror, accessCheckTtlMs, prefetchLayers } = cfg;
    tagMemory = cfg.staleTags
      ? await TagMemory.load(join(cfg.dataDir, "registry-tags.json"), { maxEntries: PROXY.tagEntries, saveDelayMs: PROXY.tagSaveDelayMs }, log)
      : undefined;
    const staleTags = tagMemory && cfg.staleTags ? { staleTags: { memory: tagMemory, opts: cfg.staleTags } } : {};
    proxy = new ProxyServer(engine, log, { policy, registryMirror, metrics, accessCheckTtlMs, prefetchLayers, ...staleTags, ...(ca ? { ca } : {}) });
    proxyPort = await proxy.listen(cfg.listenHost, cfg.proxyPort);
  }
  if (cfg.containerd && proxyPort !== null) {
    const proxyHost = cfg.listenHost === "0.0.0.0" || cfg.listenHost === "::" ? "127.0.0.1" : cfg.listenHost;
    upload.importer = new ContainerdImporter(
      { ...cfg.containerd, hostsDir: join(cfg.dataDir, "containerd-hosts"), proxyUrl: `http://${proxyHost}:${proxyPort}` },
      log,
    );
  }
  const metricsServer = cfg.metricsPort !== null ? await metrics.serve(cfg.listenHost, cfg.metricsPort) : undefined;
  const metricsAddr = metricsServer?.address();
  const metricsPort = typeof metricsAddr === "object" && metricsAddr ? metricsAddr.port : null;

  const instance = randomBytes(12).toString("hex");
  const announce = async (): Promise<HostAnnounceInput> => ({
    id: hostId,
    hostname: cfg.hostname,
    ip: cfg.advertiseIp,
    uploadPort,
    isSeed: cfg.seed,
    location: cfg.location,
    idc: cfg.idc,
    uploadSlots: cfg.uploadConcurrency,
    freeUploadSlots: upload.freeSlots,
    controlToken: cfg.controlToken,
    instance,
    labels: { ...cfg.labels, ...(await accelerateLabel(cfg.accelerateShared, cfg.hostname)) },
    version: KILN_VERSION,
    ...(proxyPort !== null ? { proxyPort } : {}),
    ...(metricsPort !== null ? { metricsPort } : {}),
    stats: {
      tasks: storage.count(),
      bytesStored: storage.usedBytes(),
      freeDiskBytes: await freeDiskBytes(cfg.dataDir),
      ...(await metrics.trafficTotals()),
    },
  });
  let announced = false;
  const keepAlive = async () => {
    try {
      const reply = await scheduler.announceHost(await announce());
      membership.update(reply.uploadCredential);
      if (!announced) log.info({ schedulers: scheduler.schedulers.map((s) => s.url) }, "announced to scheduler");
      announced = true;
    } catch (err) {
      if (announced || !(err instanceof KilnError)) log.warn({ err: (err as Error).message }, "scheduler keepalive failed");
      announced = false;
    }
  };
  await keepAlive();
  const keepAliveTimer = setInterval(keepAlive, cfg.keepAliveMs);
  const gcTimer = setInterval(() => {
    storage.collectGarbage(cfg.gc).catch((err) => log.warn({ err: (err as Error).message }, "gc failed"));
  }, cfg.gc.intervalMs);
  keepAliveTimer.unref();
  gcTimer.unref();

  log.info(
    {
      event: "ready",
      hostId,
      uploadPort,
      proxyPort,
      metricsPort,
      seed: cfg.seed,
      dataDir: cfg.dataDir,
      containerd: upload.importer ? cfg.containerd?.address : null,
    },
    `${component} ready`,
  );
  return {
    hostId,
    uploadPort,
    proxyPort,
    proxyAllowHosts: allowHosts,
    metricsPort,
    engine,
    async close() {
      clearInterval(keepAliveTimer);
      scheduler.stop();
      clearInterval(gcTimer);
      await engine!.shutdown();
      await storage.flush();
      await scheduler.leaveHost(hostId).catch(() => undefined);
      await Promise.all([upload.close(), proxy?.close(), tagMemory?.flush(), new Promise((r) => (metricsServer ? metricsServer.close(r) : r(undefined)))]);
    },
  };
}
