/**
 * Wire shapes of the manager: the Dragonfly-compatible Open API (/oapi/v1), the
 * console API (/api/v1: users, tokens) and the membership API schedulers and seed
 * peers use to register and keep alive. One source of truth for server and clients.
 *
 * Longer than 300 lines on purpose: it is a catalogue of schemas, one per wire shape,
 * read by the manager, the CLI and the console alike; splitting it would only spread
 * one contract over several files.
 */
import { z } from "zod";
import { PIECE, SCHEDULER } from "../common/defaults.js";
import { ipVersion } from "../common/ip.js";
import { PreheatScope } from "./scheduler.js";
import { NewPassword, Role } from "./console.js";
import { ImageDistribution, JOB_TYPES, TaskHolder } from "./tasks.js";
import { compilesAsRegExp } from "./common.js";
import { TASK_ID_PATTERN } from "../common/task-id-pattern.js";

export * from "./console.js";

export const OPEN_API = "/oapi/v1";
export const CONSOLE_API = "/api/v1";

export const MANAGER_PATHS = {
  jobs: `${OPEN_API}/jobs`,
  job: (id: number) => `${OPEN_API}/jobs/${id}`,
  clusters: `${OPEN_API}/clusters`,
  cluster: (id: number) => `${OPEN_API}/clusters/${id}`,
  openapi: `${OPEN_API}/openapi.json`,
  jobCancel: (id: number) => `${OPEN_API}/jobs/${id}/cancel`,
  consoleOpenapi: `${CONSOLE_API}/openapi.json`,
  signin: `${CONSOLE_API}/users/signin`,
  signout: `${CONSOLE_API}/users/signout`,
  resetPassword: (userId: number) => `${CONSOLE_API}/users/${userId}/reset_password`,
  me: `${CONSOLE_API}/users/me`,
  users: `${CONSOLE_API}/users`,
  user: (id: number) => `${CONSOLE_API}/users/${id}`,
  userRoles: (id: number) => `${CONSOLE_API}/users/${id}/roles`,
  userRole: (id: number, role: string) => `${CONSOLE_API}/users/${id}/roles/${role}`,
  consoleJobs: `${CONSOLE_API}/jobs`,
  consoleJob: (id: number) => `${CONSOLE_API}/jobs/${id}`,
  consoleJobCancel: (id: number) => `${CONSOLE_API}/jobs/${id}/cancel`,
  consoleClusters: `${CONSOLE_API}/clusters`,
  consoleCluster: (id: number) => `${CONSOLE_API}/clusters/${id}`,
  tokens: `${CONSOLE_API}/personal-access-tokens`,
  token: (id: number) => `${CONSOLE_API}/personal-access-tokens/${id}`,
  schedulers: `${CONSOLE_API}/schedulers`,
  schedulerKeepAlive: (id: number) => `${CONSOLE_API}/schedulers/${id}/keepalive`,
  scheduler: (id: number) => `${CONSOLE_API}/schedulers/${id}`,
  seedPeers: `${CONSOLE_API}/seed-peers`,
  seedPeerKeepAlive: (id: number) => `${CONSOLE_API}/seed-peers/${id}/keepalive`,
  seedPeer: (id: number) => `${CONSOLE_API}/seed-peers/${id}`,
  /** Scheduler → manager: the hosts it knows (HostsReport), with the cluster secret. */
  schedulerHosts: (id: number) => `${CONSOLE_API}/schedulers/${id}/hosts`,
  /** The peer inventory (ListPeersQuery → PeerView[]), paged. */
  peers: `${CONSOLE_API}/peers`,
  openPeers: `${OPEN_API}/peers`,
  /** Bytes from the swarm vs from origins over time (TrafficQuery → TrafficView). */
  traffic: `${CONSOLE_API}/traffic`,
  /** Pull schedules (api/puller.ts): image lists kept warm on selected peers. */
  pullSchedules: `${OPEN_API}/pull-schedules`,
  pullSchedule: (id: number) => `${OPEN_API}/pull-schedules/${id}`,
  pullScheduleRun: (id: number) => `${OPEN_API}/pull-schedules/${id}/run`,
  consolePullSchedules: `${CONSOLE_API}/pull-schedules`,
  consolePullSchedule: (id: number) => `${CONSOLE_API}/pull-schedules/${id}`,
  consolePullScheduleRun: (id: number) => `${CONSOLE_API}/pull-schedules/${id}/run`,
  /** Peer → manager: the schedulers of the cluster whose scopes fit this host best (SchedulerSearchQuery → SchedulerSearchReply). */
  schedulerSearch: `${CONSOLE_API}/scheduler-search`,
  /** Liveness: 200 while the process runs (Kubernetes' livenessProbe; Dragonfly's path). */
  health: "/healthy",
  /** Readiness (ReadinessReply): 200 when the database and, when configured, Redis answer in time; 503 naming what does not. */
  ready: "/ready",
} as const;

/** GET /ready. A check is "ok" or the sentence saying why not; `message` (on 503) joins the failed ones. */
export const ReadinessReply = z.object({
  ready: z.boolean(),
  checks: z.object({ database: z.string(), redis: z.string().optional() }),
  message: z.string().optional(),
});
export type ReadinessReply = z.infer<typeof ReadinessReply>;

/* ------------------------------------------------------------------ common */

export const Id = z.coerce
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);
export const IdParams = z.object({ id: Id });

export const TokenScope = z.enum(["job", "cluster"]);
export type TokenScope = z.infer<typeof TokenScope>;

export const JobState = z.enum(["PENDING", "SUCCESS", "FAILURE"]);
export type JobState = z.infer<typeof JobState>;

/** An integer in [min, max], with a message for each way it can be wrong (zod's `error` option would give one for all). */
function boundedInt(min: number, max: number, opts: { coerce?: boolean; what?: string } = {}) {
  const base = opts.coerce ? z.coerce.number({ error: `must be ${opts.what ?? "a number"}` }) : z.number({ error: `must be ${opts.what ?? "a number"}` });
  const range = `must be an integer from ${min} to ${max}`;
  return base.int(range).min(min, range).max(max, range);
}

const HttpUrl = z
  .string({ error: "must be a string URL" })
  .max(8192, "must be at most 8192 characters")
  // new URL() silently drops CR, LF and tabs: a URL that has them is not the one the user meant.
  .refine((s) => !/[\u0000-\u0020\u007f]/.test(s), "must not contain spaces or control characters (CR, LF, tab)")
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === "http:" || u.protocol === "https:") && u.hostname.length > 0;
    } catch {
      return false;
    }
  }, "must be an absolute http(s) URL");

const HeaderName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const Headers = z
  .record(
    z.string().regex(HeaderName, "header names must be HTTP tokens"),
    z
      .string({ error: "header values must be strings" })
      .max(8192)
      .regex(/^[^\r\n\0]*$/, "header values must not contain CR, LF or NUL"),
    { error: (iss) => (iss.code === "invalid_key" ? "header names must be HTTP tokens" : "must be an object of header names to string values") },
  )
  .refine((h) => Object.keys(h).length <= 100, "at most 100 headers");

const Platform = z
  .string({ error: "must be a string like linux/amd64" })
  .regex(/^(?:[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?)?$/, "must be os/arch or os/arch/variant, e.g. linux/amd64");

const PieceLength = z
  .number({ error: "must be a number of bytes" })
  .int("must be an integer number of bytes")
  .min(PIECE.minExplicit, `must be at least ${PIECE.minExplicit} bytes (4 MiB)`)
  .max(PIECE.maxExplicit, `must be at most ${PIECE.maxExplicit} bytes (1024 MiB)`);

const ShortString = z.string({ error: "must be a string" }).max(1024, "must be at most 1024 characters");

/** Go duration strings ("90s", "1h30m", "500ms"). */
const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A job timeout in seconds: a number of seconds, a Go duration string, or Go's time.Duration in nanoseconds (numbers ≥ 1e6). */
export function timeoutSeconds(v: number | string): number {
  if (typeof v === "number") return v >= 1e6 ? v / 1e9 : v;
  let ms = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms / 1000;
}

const Timeout = z
  .union([z.number().positive(), z.string().regex(GO_DURATION, 'must be seconds (a number) or a duration such as "30m"')], {
    error: 'must be seconds (a number) or a duration such as "30m"',
  })
  .refine((v) => {
    const s = timeoutSeconds(v);
    return s >= 1 && s <= 7 * 24 * 3600;
  }, "must be between 1 second and 7 days");

const MANIFEST_PATH = /^\/v2\/.+\/manifests\/[^/]+$/;

/** Preheat `args` as clients send them: Dragonfly's camelCase and snake_case spellings both accepted. */
export const PreheatArgsInput = z
  .object(
    {
      type: z.enum(["image", "file"], { error: 'must be "image" or "file"' }),
      url: HttpUrl.optional(),
      urls: z.array(HttpUrl, { error: "must be an array of URLs" }).max(1000, "at most 1000 URLs").optional(),
      filteredQueryParams: z.string({ error: "must be a string like Expires&Signature" }).max(1024, "must be at most 1024 characters").optional(),
      filtered_query_params: z.string({ error: "must be a string like Expires&Signature" }).max(1024, "must be at most 1024 characters").optional(),
      headers: Headers.nullable().optional(),
      username: ShortString.optional(),
      password: ShortString.optional(),
      pieceLength: PieceLength.nullable().optional(),
      piece_length: PieceLength.nullable().optional(),
      platform: Platform.optional(),
      tag: ShortString.optional(),
      application: ShortString.optional(),
      scope: PreheatScope.optional(),
      ips: z
        .array(
          z.string().refine((s) => ipVersion(s) !== 0, "must be an IP address"),
          { error: "must be an array of IP addresses" },
        )
        .max(1000)
        .optional(),
      count: boundedInt(1, 100_000).optional(),
      percentage: boundedInt(1, 100).optional(),
      concurrent_task_count: boundedInt(1, 1000).optional(),
      concurrent_peer_count: boundedInt(1, 10_000).optional(),
      timeout: Timeout.optional(),
    },
    { error: "must be an object" },
  )
  .superRefine((a, ctx) => {
    if (!a.url && !a.urls?.length) ctx.addIssue({ code: "custom", path: ["url"], message: "url (or urls) is required" });
    if (a.type === "image") {
      for (const [i, u] of [a.url, ...(a.urls ?? [])].entries()) {
        if (u && !MANIFEST_PATH.test(new URL(u).pathname)) {
          ctx.addIssue({
            code: "custom",
            path: i === 0 ? ["url"] : ["urls", i - 1],
            message: "an image URL must look like https://<registry>/v2/<repository>/manifests/<tag or digest>",
          });
        }
      }
    }
  });
export type PreheatArgsInput = z.infer<typeof PreheatArgsInput>;

const FilterParams = z.string({ error: "must be a string like Expires&Signature" }).max(1024, "must be at most 1024 characters");

/**
 * get_task / delete_task `args`: a task ID, or a URL with what the task ID is computed
 * from (tag, application, filtered query params, an explicit piece length), exactly as
 * a pull through a peer computes it.
 */
/** What a task ID is computed from besides the URL, and the job's timeout: shared by the task jobs' args. */
const TaskIdentityArgs = {
  tag: ShortString.optional(),
  application: ShortString.optional(),
  filtered_query_params: FilterParams.optional(),
  filteredQueryParams: FilterParams.optional(),
  piece_length: PieceLength.nullable().optional(),
  pieceLength: PieceLength.nullable().optional(),
  timeout: Timeout.optional(),
};

export const TaskRefArgsInput = z
  .object(
    {
      task_id: z.string({ error: "must be a string" }).regex(TASK_ID_PATTERN, "must be a task ID (64 or 128 lowercase hex characters)").optional(),
      url: HttpUrl.optional(),
      ...TaskIdentityArgs,
    },
    { error: "must be an object" },
  )
  .superRefine((a, ctx) => {
    if (!a.task_id && !a.url) ctx.addIssue({ code: "custom", path: ["task_id"], message: "task_id or url is required" });
    if (a.task_id && a.url) ctx.addIssue({ code: "custom", path: ["url"], message: "give task_id or url, not both" });
  });
export type TaskRefArgsInput = z.infer<typeof TaskRefArgsInput>;

/** get_image_distribution `args`: an image manifest URL, its registry credentials and platform; layer task IDs as a pull computes them. */
export const ImageDistributionArgsInput = z.object(
  {
    url: HttpUrl.refine(
      (u) => MANIFEST_PATH.test(new URL(u).pathname),
      "an image URL must look like https://<registry>/v2/<repository>/manifests/<tag or digest>",
    ),
    username: ShortString.optional(),
    password: ShortString.optional(),
    headers: Headers.nullable().optional(),
    platform: Platform.optional(),
    ...TaskIdentityArgs,
  },
  { error: "must be an object" },
);
export type ImageDistributionArgsInput = z.infer<typeof ImageDistributionArgsInput>;

/** sync_peers `args`: refresh the peer inventory from every scheduler now. */
export const SyncPeersArgsInput = z.object({ timeout: Timeout.optional() }, { error: "must be an object" });

const JobBodyCommon = {
  bio: ShortString.optional(),
  /** Accepted for Dragonfly compatibility; the job belongs to the token's user. */
  user_id: z.number().int().optional(),
  scheduler_cluster_ids: z
    .array(z.number({ error: "must be cluster ids (numbers)" }).int().min(1), { error: "must be an array of cluster ids" })
    .max(1000)
    .optional(),
};

export const CreateJobBody = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("preheat"), args: PreheatArgsInput, ...JobBodyCommon }),
    z.object({ type: z.literal("get_task"), args: TaskRefArgsInput, ...JobBodyCommon }),
    z.object({ type: z.literal("delete_task"), args: TaskRefArgsInput, ...JobBodyCommon }),
    z.object({ type: z.literal("get_image_distribution"), args: ImageDistributionArgsInput, ...JobBodyCommon }),
    z.object({ type: z.literal("sync_peers"), args: SyncPeersArgsInput.default({}), ...JobBodyCommon }),
  ],
  {
    error: (iss) => (iss.code === "invalid_union" ? `must be one of ${JOB_TYPES.map((t) => `"${t}"`).join(", ")}` : "the body must be a JSON object"),
  },
);
export type CreateJobBody = z.infer<typeof CreateJobBody>;

export const UpdateJobBody = z.object({ bio: ShortString.optional() }, { error: "the body must be a JSON object" });

/**
 * `args` as kiln stores them: canonical spelling, no credentials, defaults not filled
 * in (an explicit pieceLength is part of the task ID, a default one is not).
 */
export const StoredPreheatArgs = z.object({
  type: z.enum(["image", "file"]),
  url: z.string(),
  urls: z.array(z.string()).optional(),
  filteredQueryParams: z.string().optional(),
  headers: z.record(z.string(), z.string()).nullable().optional(),
  pieceLength: z.number().int().optional(),
  platform: z.string().optional(),
  tag: z.string().optional(),
  application: z.string().optional(),
  scope: PreheatScope.optional(),
  ips: z.array(z.string()).optional(),
  count: z.number().int().optional(),
  percentage: z.number().int().optional(),
  concurrent_task_count: z.number().int().optional(),
  concurrent_peer_count: z.number().int().optional(),
  /** Seconds. */
  timeout: z.number().optional(),
});
export type StoredPreheatArgs = z.infer<typeof StoredPreheatArgs>;

/** `args` in responses: defaults filled in, keys in Dragonfly's (alphabetical) order; registry credentials never come back (as in seed 001). */
export const PreheatArgsView = z.object({
  application: z.string().optional(),
  concurrent_peer_count: z.number().int().optional(),
  concurrent_task_count: z.number().int().optional(),
  count: z.number().int().optional(),
  filteredQueryParams: z.string(),
  headers: z.record(z.string(), z.string()).nullable(),
  ips: z.array(z.string()).optional(),
  password: z.literal(""),
  percentage: z.number().int().optional(),
  pieceLength: z.number().int(),
  platform: z.string(),
  scope: PreheatScope.optional(),
  tag: z.string(),
  timeout: z.number().optional(),
  type: z.enum(["image", "file"]),
  url: z.string(),
  urls: z.array(z.string()).optional(),
  username: z.literal(""),
});
export type PreheatArgsView = z.infer<typeof PreheatArgsView>;

/**
 * get_task, delete_task and get_image_distribution `args` as kiln stores and shows
 * them: canonical spelling, no credentials (registry password and credential headers
 * are sealed apart, as for preheat).
 */
export const TaskJobArgs = z.object({
  task_id: z.string().optional(),
  url: z.string().optional(),
  tag: z.string().optional(),
  application: z.string().optional(),
  filteredQueryParams: z.string().optional(),
  pieceLength: z.number().int().optional(),
  platform: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  /** Seconds. */
  timeout: z.number().optional(),
});
export type TaskJobArgs = z.infer<typeof TaskJobArgs>;

/** What happened to one URL on one peer (Dragonfly's success_tasks / failure_tasks entries). */
export const TaskOutcome = z.object({
  url: z.string(),
  task_id: z.string(),
  scheduler_cluster_id: z.number().int(),
  hostname: z.string(),
  ip: z.string(),
  /** The host's upload port, when known (tells hosts that share a hostname apart). */
  port: z.number().int().optional(),
  /** "super" for a seed peer, "normal" for a peer (Dragonfly's delete_task results). */
  host_type: z.enum(["normal", "super"]).optional(),
  description: z.string(),
});
export type TaskOutcome = z.infer<typeof TaskOutcome>;

/** Where one host stands with one preheated URL, as its scheduler last reported it. */
export const HostProgress = z.object({
  hostname: z.string(),
  ip: z.string(),
  /** Upload port, when the scheduler reported it. */
  port: z.number().int().optional(),
  host_type: z.enum(["normal", "super"]).optional(),
  /** queued: asked, not started; fetching: registered, getting pieces (from_origin: from the origin itself). */
  state: z.enum(["queued", "fetching", "succeeded", "failed"]),
  from_origin: z.boolean().optional(),
  finished_pieces: z.number().int(),
  bytes_done: z.number().int(),
  /** Bytes per second over the last few seconds. */
  rate_bps: z.number(),
  error: z.string().optional(),
});
export type HostProgress = z.infer<typeof HostProgress>;

/** One URL on one cluster: its size once the origin answered, and every host asked. */
export const UrlProgress = z.object({
  url: z.string(),
  task_id: z.string(),
  scheduler_cluster_id: z.number().int(),
  state: z.enum(["pending", "running", "succeeded", "failed"]),
  content_length: z.number().int().nullable(),
  total_pieces: z.number().int().nullable(),
  /** Summed over the hosts asked; the totals are the content times the hosts (null until the size is known). */
  bytes_done: z.number().int(),
  bytes_total: z.number().int().nullable(),
  pieces_done: z.number().int(),
  pieces_total: z.number().int().nullable(),
  rate_bps: z.number(),
  hosts_fetching: z.number().int(),
  hosts: z.array(HostProgress),
});
export type UrlProgress = z.infer<typeof UrlProgress>;

/** Job-wide counts: Dragonfly's three, then kiln's byte and piece sums over every URL (additive, optional). */
export const JobProgress = z.object({
  total: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  bytes_done: z.number().int().optional(),
  /** Null while some URL's size is not known yet. */
  bytes_total: z.number().int().nullable().optional(),
  pieces_done: z.number().int().optional(),
  pieces_total: z.number().int().nullable().optional(),
  rate_bps: z.number().optional(),
  hosts_fetching: z.number().int().optional(),
});
export type JobProgress = z.infer<typeof JobProgress>;

export const JobResult = z.object({
  /** Blob or file URLs the job preheats (an image resolved to its config and layers). */
  urls: z.array(z.string()),
  progress: JobProgress,
  /** Preheat: live progress per URL and cluster, per host. */
  tasks: z.array(UrlProgress).optional(),
  success_tasks: z.array(TaskOutcome),
  failure_tasks: z.array(TaskOutcome),
  /** Readable log: what failed and why, in order. */
  log: z.array(z.string()),
  /** One-line cause when the job ended as FAILURE. */
  error: z.string().optional(),
  /** get_task: every peer of every asked cluster that holds the task or part of it. */
  peers: z.array(TaskHolder).optional(),
  /** get_image_distribution: the layers and which host holds which. */
  image: ImageDistribution.optional(),
});
export type JobResult = z.infer<typeof JobResult>;

export const ClusterRef = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
});
export type ClusterRef = z.infer<typeof ClusterRef>;

export const JobView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  task_id: z.string(),
  type: z.string(),
  state: JobState,
  args: z.union([PreheatArgsView, TaskJobArgs]),
  scheduler_clusters: z.array(ClusterRef),
  bio: z.string(),
  user_id: z.number().int().nullable(),
  result: JobResult.nullable(),
});
export type JobView = z.infer<typeof JobView>;

/** A preheat job (what the preheat pages and `kiln preheat` read). */
export const PreheatJobView = JobView.extend({ type: z.literal("preheat"), args: PreheatArgsView });
export type PreheatJobView = z.infer<typeof PreheatJobView>;

export const ListJobsQuery = z.object({
  page: boundedInt(1, 1_000_000, { coerce: true, what: "a page number" }).default(1),
  per_page: boundedInt(1, 100, { coerce: true }).default(10),
  state: JobState.optional(),
  type: z.string().max(64).optional(),
  /** Dragonfly's filter: jobs of one user. */
  user_id: z.coerce.number().int().min(1).optional(),
  /** kiln's: jobs one of whose URLs contains this text (case-insensitive). */
  url: z.string().max(1024).optional(),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

/* ---------------------------------------------------------------- clusters */

export const ClusterConfig = z.object({
  /** Jobs per second the cluster accepts (token bucket); 429 beyond. */
  job_rate_limit: z.number().int().min(1).max(100_000),
  /** Parents the cluster's schedulers hand a peer per answer (Dragonfly's candidate_parent_limit, 1–20). */
  candidate_parent_limit: z.number().int().min(1).max(20),
  /** Candidate parents a scheduler samples per selection (Dragonfly's filter_parent_limit, 10–1000). */
  filter_parent_limit: z.number().int().min(10).max(1000),
});
export type ClusterConfig = z.infer<typeof ClusterConfig>;

/** What a cluster's schedulers apply; the rest of ClusterConfig is the manager's. */
export const SCHEDULER_CLUSTER_CONFIG_DEFAULTS = {
  candidate_parent_limit: SCHEDULER.parentsPerSchedule,
  filter_parent_limit: SCHEDULER.filterParentLimit,
} as const;

/** `10.0.0.0/8`, `fd00::/8`: an IP and a prefix length that fits it. */
const Cidr = z.string().refine((s) => {
  const [ip, bits, extra] = s.split("/");
  const v = ipVersion(ip ?? "");
  return extra === undefined && v !== 0 && /^\d{1,3}$/.test(bits ?? "") && Number(bits) <= (v === 4 ? 32 : 128);
}, "must be a CIDR like 10.0.0.0/8 or fd00::/8");

/** A regular expression that compiles (hostnames scope). */
const HostnamePattern = z.string().min(1).max(255).refine(compilesAsRegExp, "must be a regular expression like ^node-[0-9]+$");

/**
 * Which peers belong to a cluster (Dragonfly's scheduler cluster scopes): a peer
 * that asks the manager for its scheduler gets the cluster that matches it best.
 */
export const ClusterScopes = z.object({
  /** IDCs, separated by `|`; a peer whose --idc is one of them matches. */
  idc: z.string().max(1024).default(""),
  /** A location path like `china|hangzhou|zone-a`; a peer's --location matches element by element from the left. */
  location: z.string().max(1024).default(""),
  cidrs: z.array(Cidr).max(1000).default([]),
  hostnames: z.array(HostnamePattern).max(1000).default([]),
});
export type ClusterScopes = z.infer<typeof ClusterScopes>;

export const MemberState = z.enum(["active", "inactive"]);

export const MemberView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  hostname: z.string(),
  ip: z.string(),
  port: z.number().int(),
  url: z.string(),
  type: z.string(),
  state: MemberState,
  last_keepalive_at: z.string(),
  scheduler_cluster_id: z.number().int(),
});
export type MemberView = z.infer<typeof MemberView>;

export const ClusterView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  bio: z.string(),
  config: ClusterConfig,
  scopes: ClusterScopes,
  is_default: z.boolean(),
  schedulers: z.array(MemberView),
  seed_peers: z.array(MemberView),
});
export type ClusterView = z.infer<typeof ClusterView>;

const ClusterName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9._-]+$/, "may contain only letters, digits, '.', '_' and '-'");

export const CreateClusterBody = z.object({
  name: ClusterName,
  bio: ShortString.optional(),
  config: ClusterConfig.partial().optional(),
  scopes: ClusterScopes.optional(),
  is_default: z.boolean().optional(),
});
export type CreateClusterBody = z.infer<typeof CreateClusterBody>;

export const UpdateClusterBody = CreateClusterBody.partial();
export type UpdateClusterBody = z.infer<typeof UpdateClusterBody>;

/* ------------------------------------------------------- users and tokens */

export const SignInBody = z.object({ name: z.string().min(1).max(255), password: z.string().min(1).max(1024) });
/** Dragonfly's answer; the same token is also set as the `jwt` cookie. Who signed in: GET /api/v1/users/me. */
export const SignInReply = z.object({
  token: z.string(),
  /** When the session ends (RFC 3339). */
  expire: z.string(),
});
export type SignInReply = z.infer<typeof SignInReply>;

export const ResetPasswordBody = z.object({
  old_password: z.string().min(1).max(1024),
  new_password: NewPassword,
});

export const UserView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  email: z.string(),
  state: z.string(),
  /** The generated or root-given first password must be changed before anything else works. */
  must_change_password: z.boolean(),
  role: Role,
});
export type UserView = z.infer<typeof UserView>;

export const TokenState = z.enum(["active", "inactive"]);

export const CreateTokenBody = z.object({
  name: z.string().min(1).max(255),
  bio: ShortString.optional(),
  scopes: z.array(TokenScope).min(1, "at least one scope").max(2),
  /** ISO-8601 time; default one year from now. */
  expired_at: z.iso.datetime({ offset: true, error: "must be an ISO-8601 time, e.g. 2030-01-01T00:00:00Z" }).optional(),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBody>;

export const UpdateTokenBody = z.object({
  name: z.string().min(1).max(255).optional(),
  bio: ShortString.optional(),
  state: TokenState.optional(),
  expired_at: z.iso.datetime({ offset: true }).optional(),
});

export const TokenView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  bio: z.string(),
  scopes: z.array(TokenScope),
  state: TokenState,
  expired_at: z.string(),
  user_id: z.number().int(),
  /** Only in the reply that created the token; never again. */
  token: z.string().optional(),
});
export type TokenView = z.infer<typeof TokenView>;

/* ------------------------------------------------------------- membership */

export const SchedulerRegistration = z.object({
  hostname: z.string().min(1).max(255),
  ip: z.string().refine((s) => ipVersion(s) !== 0, "must be an IP address"),
  port: z.number().int().min(1).max(65535),
  /** The scheduler API URL; default http://<ip>:<port>. */
  url: HttpUrl.optional(),
  /** Default: the default cluster. */
  scheduler_cluster_id: z.number().int().min(1).optional(),
});
export type SchedulerRegistration = z.infer<typeof SchedulerRegistration>;

export const SeedPeerRegistration = z.object({
  hostname: z.string().min(1).max(255),
  ip: z.string().refine((s) => ipVersion(s) !== 0, "must be an IP address"),
  /** Upload port. */
  port: z.number().int().min(1).max(65535),
  type: z.enum(["super", "strong", "weak"]).default("super"),
  scheduler_cluster_id: z.number().int().min(1).optional(),
});
export type SeedPeerRegistration = z.infer<typeof SeedPeerRegistration>;
export type SeedPeerRegistrationInput = z.input<typeof SeedPeerRegistration>;

export const RegistrationReply = z.object({
  id: z.number().int(),
  scheduler_cluster_id: z.number().int(),
  /** Re-announce at least this often. */
  keepalive_interval_ms: z.number().int(),
  /** The cluster's settings now; a scheduler applies them (sent again with every keepalive). */
  config: ClusterConfig,
});
export type RegistrationReply = z.infer<typeof RegistrationReply>;

export const KeepAliveReply = z.object({ ok: z.literal(true), scheduler_cluster_id: z.number().int(), config: ClusterConfig });
export type KeepAliveReply = z.infer<typeof KeepAliveReply>;

/** A peer asking which schedulers to use: what it knows about its own host. */
export const SchedulerSearchQuery = z.object({
  hostname: z.string().min(1).max(255),
  ip: z.string().refine((s) => ipVersion(s) !== 0, "must be an IP address"),
  idc: z.string().max(255).default(""),
  location: z.string().max(1024).default(""),
});
export type SchedulerSearchQuery = z.infer<typeof SchedulerSearchQuery>;

export const SchedulerSearchReply = z.object({
  scheduler_cluster_id: z.number().int(),
  scheduler_cluster_name: z.string(),
  /** Active schedulers of that cluster, freshest keepalive first. */
  schedulers: z.array(z.object({ id: z.number().int(), hostname: z.string(), ip: z.string(), port: z.number().int(), url: z.string() })),
});
export type SchedulerSearchReply = z.infer<typeof SchedulerSearchReply>;

export { CLUSTER_SECRET_HEADER } from "./common.js";
