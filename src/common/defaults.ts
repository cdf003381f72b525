/** Every default kiln uses, in one place. Components and the CLI import from here. */

export const MiB = 1024 * 1024;

/** kiln's version, as `kiln --version` prints it and peers report it to the inventory. */
export const KILN_VERSION = "0.1.0";

export const PORTS = {
  manager: 8080,
  scheduler: 8002,
  peerUpload: 4000,
  peerProxy: 4001,
  peerMetrics: 4002,
  /** The all-in-one seed peer needs its own ports beside the regular peer. */
  seedUpload: 4010,
  seedMetrics: 4012,
} as const;

export const PIECE = {
  /** Number of pieces the default piece length aims for. */
  targetCount: 500,
  minDefault: 4 * MiB,
  maxDefault: 64 * MiB,
  minExplicit: 4 * MiB,
  maxExplicit: 1024 * MiB,
} as const;

/** Dragonfly's proxy.defaultFilter recommendation for containerd. */
export const DEFAULT_PROXY_FILTER = "Expires&Signature&ns";
/** kiln's TLS-interception CA (`kiln ca export`, `kiln peer --proxy-intercept`). */
export const DEFAULT_CA_DIR = ".kiln/ca";

/** Where containerd listens on a node (pull schedules import images there when the peer can use it). */
export const DEFAULT_CONTAINERD_SOCKET = "/run/containerd/containerd.sock";
/** The Open API's default filteredQueryParams (Dragonfly's Open API documentation). */
export const DEFAULT_PREHEAT_FILTER = "Expires&Signature";

export const SCHEDULER = {
  /** How often hosts re-announce themselves. */
  keepAliveMs: 2_000,
  /** A host not heard from for this long is dead; its peers are dropped. */
  hostTimeoutMs: 10_000,
  /** How often a scheduler sends its hosts to the manager's peer inventory (a full snapshot). */
  hostsReportMs: 15_000,
  /** Tasks with no peers left are forgotten after this long. */
  taskIdleTtlMs: 10 * 60_000,
  gcIntervalMs: 1_000,
  /** Parents handed out per schedule answer. */
  parentsPerSchedule: 4,
  /**
   * Candidate parents sampled per parent selection (Dragonfly's filter_parent_limit):
   * the work per registration and per schedule call stays the same whatever the swarm's size.
   */
  filterParentLimit: 40,
  /** Failures serving others that count against a parent are those of this last window. */
  parentFailureWindowMs: 60_000,
  /** Long-poll window of the schedule endpoint. */
  scheduleWaitMs: 5_000,
  /** The longest long poll a peer may ask for. */
  maxScheduleWaitMs: 30_000,
  /** How long peers wait for a triggered seed peer before one of them goes to the origin. */
  seedTriggerWaitMs: 10_000,
  /** Several schedulers per cluster: how long a scheduler waits for the others' answer to "do you have this task?" before taking a task new to it. */
  ownerLookupMs: 3_000,
  /** Several schedulers per cluster: how often peers ask the manager for the cluster's schedulers (the list they rank task IDs over). */
  listRefreshMs: 10_000,
} as const;

export const PEER = {
  /** Pieces fetched at once by one download. */
  concurrentPieces: 8,
  /** Pieces fetched at once by all of a peer's downloads together (download/piece-budget.ts). */
  hostConcurrentPieces: 16,
  /** In-flight pieces per parent. */
  piecesPerParent: 3,
  /** Parents a download keeps have feeds open to; a download that starves asks for this many more, up to `maxParents`. */
  parents: 8,
  maxParents: 16,
  /** A piece that makes no progress for this long is retried elsewhere. */
  pieceStallMs: 10_000,
  /** A have feed whose parent has not answered within this long is opened again on a new connection (download/have-feed-client.ts)… */
  feedOpenTimeoutMs: 2_000,
  /** …this many times in all before the parent is given up. */
  feedOpenAttempts: 5,
  /** With no parent able to serve for this long while the scheduler does not answer, go to the origin (while it answers, it decides). */
  noParentFallbackMs: 15_000,
  /**
   * Scheduler polls of a download: a download with a free piece slot and nothing to
   * start polls again at once (the poll waits for news), but never twice within
   * `pollGapMs`; one whose slots are all busy refreshes its parents every `pollRefreshMs`.
   * Each report wakes every waiting poll of the task, so this bounds the O(peers²) traffic.
   */
  pollGapMs: 50,
  pollRefreshMs: 1_000,
  /** Pieces the origin fetcher verified within this window go to the scheduler in one report (children wait for their digests). */
  reportDelayMs: 30,
  /** The same for a child: its reports only make it a candidate parent (other children hear of its pieces through its have feed). */
  childReportDelayMs: 1_000,
  /**
   * Piece spreading by a seed or origin fetcher (upload/have-feed.ts): a new piece is
   * announced to this many children at first; the others get it from them, so the
   * spreader's uplink carries each piece about once instead of once per node.
   */
  spreadFirstReceivers: 1,
  /** While no child is fetching a new piece from the spreader, it is offered to the next one this often. */
  spreadTickMs: 250,
  /** With no piece upload of a task from the spreader for this long, its pieces sent once are announced to every child. */
  spreadIdleReleaseMs: 500,
  /** Every piece is announced to every child this long after it landed, sent or not (a receiver may have gone away). */
  spreadForceReleaseMs: 30_000,
  /**
   * Upload server: concurrent piece uploads; beyond them a child is told "busy" and asks
   * another parent. Few at a time, each at a good share of the uplink (BitTorrent unchokes
   * 4): a piece is passed on only once it is whole, so 32 slow uploads held every piece
   * back 8 times longer. 32 nodes × 128 MiB on 40 Mbit links: 85 s with 32, 75 s with 8,
   * 67 s with 4; on 1 Gbit links 48–52 s either way (one run each, a busy machine).
   */
  uploadConcurrency: 4,
  /** Upload bandwidth in bytes/s; 0 = unlimited. */
  uploadRateBytes: 0,
  taskTtlMs: 6 * 60 * 60_000,
  gcIntervalMs: 30_000,
  /** Disk-usage watermarks, in percent of the data directory's filesystem. */
  gcHighWatermarkPercent: 90,
  gcLowWatermarkPercent: 80,
  /**
   * Tasks whose metadata stays in memory, least recently used dropped first: a task
   * beyond this is still on disk (and registered), read back when asked for; its
   * content goes only by the GC's TTL and watermarks. Downloads in progress always stay.
   */
  residentTasks: 1_000,
  /** A download's verified pieces are written to its metadata at most this often, so a restarted peer resumes from them. */
  progressSaveMs: 1_000,
  /** Back-to-source request timeout until response headers arrive. */
  originHeadersTimeoutMs: 30_000,
  /** An origin body that sends nothing for this long (while kiln is reading) has stalled. */
  originIdleTimeoutMs: 30_000,
  /** Range requests (with If-Range) made to resume a body that ended early or stalled, before the task fails. */
  originResumes: 3,
} as const;

export const HEADERS = {
  pieceDigest: "x-kiln-piece-digest",
  error: "x-kiln-error",
} as const;

/** `kiln get`. */
export const GET = {
  /** On a signal, how long to let a creation or copy of the temporary file finish before removing it and exiting. */
  interruptSettleMs: 2_000,
} as const;

/** The peer's proxy port (:4001). */
export const PROXY = {
  /**
   * Block size when a complete task is served from its stored file: one block per
   * answer, read into again once the socket has taken it (proxy/file-range.ts), so a
   * slow client holds this much and 200 of them ~50 MiB.
   */
  fileReadBytes: 256 * 1024,
  /** How often a local-copy answer reports download progress. */
  localCopyProgressMs: 250,
  /** The longest a local-copy client may keep a task pinned after it was told the path (it normally closes at once). */
  localCopyHoldMs: 10 * 60_000,
  /** How long an origin's yes or no to a client's credentials is remembered (content that needed credentials). */
  accessCheckTtlMs: 30_000,
  /** How long the origin has to answer such a check. */
  accessCheckTimeoutMs: 10_000,
  /** Such answers remembered at most. */
  accessCheckEntries: 10_000,
  /** The largest manifest served from the swarm (the distribution registry's own limit). */
  manifestMaxBytes: 4 * MiB,
  /** Answer a tag from the last answer the registry gave when the registry fails (conn refused, timeout, 5xx, 429). */
  staleTags: true,
  /** A remembered tag older than this is not answered (0: any age). */
  staleTagMaxAgeMs: 7 * 24 * 60 * 60_000,
  /** A registry that has not answered a manifest request by tag within this long has failed. */
  tagTimeoutMs: 10_000,
  /** Tags remembered per peer at most (least recently answered forgotten first). */
  tagEntries: 50_000,
  /** Remembered tags are written to disk at most this often. */
  tagSaveDelayMs: 1_000,
  /** Start downloading an image manifest's config and layers through the swarm as soon as the manifest is answered. */
  prefetchLayers: true,
  /** Blobs of one manifest prefetched at most. */
  prefetchBlobs: 256,
  /** Whether a manifest is public, remembered for this many manifests at most. */
  anonymousManifestEntries: 50_000,
} as const;

/** The containerd proxy snapshotter (`kiln snapshotter`) and image acceleration (`kiln accelerate`). */
/** The label of nodes that mount accelerated images (Kubernetes node label, and peer inventory label). */
export const ACCELERATE_NODE_LABEL = "kiln.io/accelerate";

export const SNAPSHOTTER = {
  /** containerd's name for it: `[proxy_plugins.kiln]`, `--snapshotter kiln`. */
  pluginName: "kiln",
  root: "/var/lib/kiln/snapshotter",
  address: "/run/kiln/snapshotter.sock",
  /** The shared directory (NFS) every node mounts at the same path. */
  shared: "/mnt/kiln-shared",
  /** A node report older than this means that node's snapshotter is down. */
  nodeReportFreshMs: 30_000,
} as const;
