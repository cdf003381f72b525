/** Wire shapes of the scheduler's HTTP/JSON API (one source of truth for server and client). */
import { z } from "zod";
import { SCHEDULER } from "../common/defaults.js";
import { Digest, DownloadSpec, OriginAccess, SafeId, TaskError, TaskId } from "./common.js";
import { TaskHolder } from "./tasks.js";
import { HostStats, Labels } from "./peers.js";

export const SCHEDULER_API = "/api/v1";

/** The most parents one schedule answer may carry. */
export const MAX_PARENTS = 64;

/**
 * Every route of the scheduler, for its client and its server alike: the server
 * passes the parameter names (`SCHEDULER_PATHS.peer(":taskId", ":peerId")`).
 */
const peerPath = (taskId: string, peerId: string) => `${SCHEDULER_API}/tasks/${taskId}/peers/${peerId}`;

export const SCHEDULER_PATHS = {
  hosts: `${SCHEDULER_API}/hosts`,
  host: (hostId: string) => `${SCHEDULER_API}/hosts/${hostId}`,
  /** POST (ImageImportRequest): relayed to the host's peer with its control token. */
  hostImages: (hostId: string) => `${SCHEDULER_API}/hosts/${hostId}/images`,
  peers: `${SCHEDULER_API}/peers`,
  /** GET: the task's status; DELETE: every holder removes it, then the scheduler forgets it. */
  task: (taskId: string) => `${SCHEDULER_API}/tasks/${taskId}`,
  /** GET: the hosts holding the task or part of it (get_task). */
  holders: (taskId: string) => `${SCHEDULER_API}/tasks/${taskId}/holders`,
  peer: peerPath,
  schedule: (taskId: string, peerId: string) => `${peerPath(taskId, peerId)}/schedule`,
  pieces: (taskId: string, peerId: string) => `${peerPath(taskId, peerId)}/pieces`,
  failures: (taskId: string, peerId: string) => `${peerPath(taskId, peerId)}/failures`,
  result: (taskId: string, peerId: string) => `${peerPath(taskId, peerId)}/result`,
  preheat: `${SCHEDULER_API}/preheat`,
  /** GET (TaskKnownReply): whether this scheduler has the task with a peer on it; another scheduler of the cluster asks before it takes a task new to it. */
  known: (taskId: string) => `${SCHEDULER_API}/tasks/${taskId}/known`,
  /** GET (SchedulerStats): what this scheduler holds, for the manager's list of schedulers. */
  stats: `${SCHEDULER_API}/stats`,
  health: "/healthy",
} as const;

export const HostAnnounce = z.object({
  id: SafeId,
  hostname: z.string().min(1).max(255),
  ip: z.string().min(1).max(64),
  uploadPort: z.number().int().min(1).max(65535),
  isSeed: z.boolean(),
  location: z.string().max(255).default(""),
  idc: z.string().max(255).default(""),
  uploadSlots: z.number().int().min(0),
  freeUploadSlots: z.number().int().min(0),
  /** Secret the scheduler must present to trigger this host's prefetch (its upload port is reachable by every node). */
  controlToken: z.string().regex(/^[A-Za-z0-9_-]{32,256}$/, "32 to 256 characters of [A-Za-z0-9_-]"),
  /**
   * Random per peer process: a host that announces itself with another one restarted,
   * and the peers of its previous process (a download it was fetching from the origin
   * included) are gone, even within the host timeout.
   */
  instance: z.string().max(64).optional(),
  /** For the manager's peer inventory: the host's labels (--label), kiln version, other ports and counters. */
  labels: Labels.default({}),
  version: z.string().max(64).default(""),
  proxyPort: z.number().int().min(1).max(65535).optional(),
  metricsPort: z.number().int().min(1).max(65535).optional(),
  stats: HostStats.optional(),
});
export type HostAnnounce = z.infer<typeof HostAnnounce>;
export type HostAnnounceInput = z.input<typeof HostAnnounce>;

export const HostAnnounceReply = z.object({
  keepAliveMs: z.number().int(),
  /** The scheduler did not know this host (first announce, or it was dropped or restarted): re-register held tasks. */
  created: z.boolean(),
  /**
   * What this host presents to other hosts' upload ports, and accepts on its own
   * (UPLOAD_CREDENTIAL_HEADER): derived from the cluster secret, or random per
   * scheduler when it has none.
   */
  uploadCredential: z.string().regex(/^[A-Za-z0-9_-]{32,256}$/),
});
export type HostAnnounceReply = z.infer<typeof HostAnnounceReply>;

export const TaskState = z.enum(["pending", "running", "succeeded", "failed"]);
export type TaskState = z.infer<typeof TaskState>;

export const TaskInfo = z.object({
  id: TaskId,
  state: TaskState,
  contentLength: z.number().int().min(0).nullable(),
  pieceLength: z.number().int().min(1).nullable(),
  totalPieces: z.number().int().min(0).nullable(),
  error: TaskError.nullable(),
  /** The origin's version of the content (strong ETag or Last-Modified), for If-Range when a peer resumes from the origin. */
  validator: z.string().max(512).nullable().optional(),
  /** Who the origin serves the content to; known with the layout (null before, or from holders that did not record it). */
  access: OriginAccess.nullable().optional(),
});
export type TaskInfo = z.infer<typeof TaskInfo>;

/** 4 TiB at the smallest piece length; a bound that keeps bitmaps small. */
export const MAX_PIECES = 1 << 20;

export const PieceInfo = z.object({
  number: z
    .number()
    .int()
    .min(0)
    .max(MAX_PIECES - 1),
  digest: Digest,
  length: z.number().int().min(0),
});
export type PieceInfo = z.infer<typeof PieceInfo>;

export const RegisterPeer = z.object({
  peerId: SafeId,
  hostId: SafeId,
  download: DownloadSpec,
  /** Set by a peer that already holds the whole task (after a restart, or after its host was dropped). */
  completed: z
    .object({
      contentLength: z.number().int().min(0),
      pieceLength: z.number().int().min(1),
      pieces: z.array(PieceInfo).max(MAX_PIECES),
      access: OriginAccess.optional(),
    })
    .optional(),
  /**
   * Set by a peer whose download was under way when the scheduler forgot it (the
   * scheduler restarted): what it holds so far, and whether it is the one fetching
   * from the origin, so the task goes on where it was instead of starting over.
   */
  resumed: z
    .object({
      contentLength: z.number().int().min(0).nullable(),
      pieceLength: z.number().int().min(1).nullable(),
      pieces: z.array(PieceInfo).max(MAX_PIECES),
      fromOrigin: z.boolean(),
      validator: z.string().max(512).optional(),
      access: OriginAccess.optional(),
    })
    .optional(),
});
export type RegisterPeer = z.infer<typeof RegisterPeer>;
export type RegisterPeerInput = z.input<typeof RegisterPeer>;

export const ParentInfo = z.object({
  peerId: SafeId,
  hostId: SafeId,
  ip: z.string(),
  uploadPort: z.number().int(),
  isSeed: z.boolean(),
});
export type ParentInfo = z.infer<typeof ParentInfo>;

/**
 * What a peer should do now: `p2p` fetch from the parents listed, `back_to_source`
 * fetch from the origin (and become the source of piece digests), `wait` for
 * parents, `failed` give up with `task.error`.
 */
export const ScheduleAction = z.enum(["p2p", "back_to_source", "wait", "failed"]);
export type ScheduleAction = z.infer<typeof ScheduleAction>;

export const ScheduleReply = z.object({
  /** The task's version; send it back as `since`. */
  version: z.number().int(),
  action: ScheduleAction,
  task: TaskInfo,
  /**
   * Canonical piece digests, from whoever fetched them from the origin: on
   * registration every one known so far; on a schedule call those that became
   * known after `since` (all of them for `since` -1), so a peer keeps what it got.
   */
  pieces: z.array(PieceInfo),
  parents: z.array(ParentInfo),
});
export type ScheduleReply = z.infer<typeof ScheduleReply>;

export const RegisterPeerReply = ScheduleReply.extend({
  taskId: TaskId,
  /**
   * Set when another scheduler of the cluster already has this task (it was there
   * before this one joined or came back): nothing was registered here; register
   * with `owner` (a scheduler API URL) instead. The rest of the reply is empty.
   */
  owner: z.string().max(2048).optional(),
});
export type RegisterPeerReply = z.infer<typeof RegisterPeerReply>;

export const ScheduleQuery = z.object({
  /** Answer once the task's version is above this (long poll); the version of the last answer, whose digests the peer holds. */
  since: z.coerce.number().int().min(-1).default(-1),
  /** Parents wanted (0: only the new digests); a peer that is stuck asks for more. */
  count: z.coerce.number().int().min(0).max(MAX_PARENTS).optional(),
  waitMs: z.coerce.number().int().min(0).max(SCHEDULER.maxScheduleWaitMs).optional(),
});
export type ScheduleQuery = z.infer<typeof ScheduleQuery>;

export const PieceReport = z.object({
  /** Sent by the peer fetching from the origin once it knows them. */
  contentLength: z.number().int().min(0).nullable().optional(),
  pieceLength: z.number().int().min(1).optional(),
  /** Sent by the peer fetching from the origin: the origin's ETag or Last-Modified for this content. */
  validator: z.string().max(512).optional(),
  /** Sent by the peer fetching from the origin, with the layout: who the origin serves the content to. */
  access: OriginAccess.optional(),
  pieces: z.array(PieceInfo).max(100_000),
});
export type PieceReport = z.infer<typeof PieceReport>;

export const PieceReportReply = z.object({
  rejected: z.array(z.object({ number: z.number().int(), reason: z.string() })),
});
export type PieceReportReply = z.infer<typeof PieceReportReply>;

export const FailureKind = z.enum(["digest_mismatch", "unreachable", "timeout", "http_error"]);
export type FailureKind = z.infer<typeof FailureKind>;

export const FailureReport = z.object({
  parentId: SafeId,
  pieceNumber: z.number().int().min(0),
  kind: FailureKind,
  message: z.string().max(2000),
});
export type FailureReport = z.infer<typeof FailureReport>;

export const PeerResult = z.discriminatedUnion("state", [
  z.object({ state: z.literal("succeeded"), contentLength: z.number().int().min(0) }),
  z.object({ state: z.literal("failed"), error: TaskError }),
]);
export type PeerResult = z.infer<typeof PeerResult>;

export const PreheatScope = z.enum(["single_seed_peer", "all_seed_peers", "all_peers"]);
export type PreheatScope = z.infer<typeof PreheatScope>;

/** Manager → scheduler: make peers fetch a task ahead of demand. */
export const PreheatRequest = z.object({
  download: DownloadSpec,
  scope: PreheatScope.default("single_seed_peer"),
  /** Only hosts with these IPs (scope all_peers / all_seed_peers). */
  ips: z.array(z.string()).optional(),
  /** Only these hosts (the pull schedules' node selection; several hosts may share an IP). */
  hostIds: z.array(SafeId).max(100_000).optional(),
  count: z.number().int().min(1).optional(),
  percentage: z.number().min(1).max(100).optional(),
  /** Hosts fetching at once (Dragonfly's concurrent_peer_count); the next is triggered as one finishes. */
  concurrentPeerCount: z.number().int().min(1).optional(),
});
export type PreheatRequest = z.infer<typeof PreheatRequest>;
export type PreheatRequestInput = z.input<typeof PreheatRequest>;

export const PreheatReply = z.object({
  taskId: TaskId,
  /** Hosts asked to fetch, and whether each accepted. */
  hosts: z.array(z.object({ hostId: SafeId, hostname: z.string(), ip: z.string(), accepted: z.boolean(), error: z.string().optional() })),
  /** Another scheduler of the cluster already has the task: nobody was asked here; preheat it at `owner` instead. */
  owner: z.string().max(2048).optional(),
});
export type PreheatReply = z.infer<typeof PreheatReply>;

export const PeerState = z.enum(["pending", "running", "back_to_source", "succeeded", "failed", "left"]);
export type PeerState = z.infer<typeof PeerState>;

export const TaskStatus = z.object({
  task: TaskInfo,
  peers: z.array(
    z.object({
      peerId: SafeId,
      hostId: SafeId,
      hostname: z.string(),
      ip: z.string(),
      isSeed: z.boolean(),
      state: PeerState,
      finishedPieces: z.number().int(),
      /** Bytes of the pieces it holds (the last piece may be short); absent from schedulers before it was added. */
      finishedBytes: z.number().int().min(0).optional(),
      /** The host's upload port: with the IP it tells hosts that share a hostname apart. */
      port: z.number().int().min(1).max(65535).optional(),
      error: TaskError.nullable(),
    }),
  ),
});
export type TaskStatus = z.infer<typeof TaskStatus>;

/** Scheduler → manager (get_task): the holders it knows; the manager adds the cluster. An unknown task has none. */
export const TaskHoldersReply = z.object({ holders: z.array(TaskHolder.omit({ scheduler_cluster_id: true })) });
export type TaskHoldersReply = z.infer<typeof TaskHoldersReply>;

/** Scheduler → manager (delete_task): what each host that held the task answered. */
export const DeleteTaskReply = z.object({
  hosts: z.array(
    z.object({
      hostId: SafeId,
      hostname: z.string(),
      ip: z.string(),
      /** Its upload port: with the IP it tells apart hosts that share a hostname. */
      port: z.number().int().optional(),
      isSeed: z.boolean(),
      deleted: z.boolean(),
      /** Bytes the host freed. */
      bytes: z.number().int().min(0),
      error: z.string().optional(),
    }),
  ),
});
export type DeleteTaskReply = z.infer<typeof DeleteTaskReply>;

export const TaskKnownReply = z.object({ known: z.boolean() });
export type TaskKnownReply = z.infer<typeof TaskKnownReply>;

/** Scheduler → manager: its load, shown in the console's list of schedulers. */
export const SchedulerStats = z.object({
  /** Tasks with at least one peer on them (the tasks this scheduler owns). */
  tasks: z.number().int().min(0),
  /** Live hosts announced to it (every host of the cluster: hosts announce to every scheduler). */
  hosts: z.number().int().min(0),
  /** Peers on its tasks (downloads in progress and holders). */
  peers: z.number().int().min(0),
});
export type SchedulerStats = z.infer<typeof SchedulerStats>;
