/** Every manager default, in one place (the shared ones live in src/common/defaults.ts). */
import { DEFAULT_PREHEAT_FILTER, MiB, SCHEDULER } from "../common/defaults.js";

export const MANAGER = {
  /** Name of the scheduler cluster created at first start. */
  defaultClusterName: "cluster-1",
  /** Data directory holding the SQLite file when no --database-url is given. */
  dataDir: ".kiln/manager",
  sqliteFile: "manager.db",
  rootUser: "root",
  /** Schedulers and seed peers re-register this often… */
  keepAliveMs: 5_000,
  /** …and are shown inactive (and not dispatched to) after this long without a word. */
  memberTimeoutMs: 20_000,
  /** Jobs per second a cluster accepts (Dragonfly's job_rate_limit), as a token bucket. */
  jobRateLimit: 10,
  /** Preheat jobs run at once by one manager (in-process or Redis queue). */
  jobConcurrency: 4,
  /** Prefix of the Redis keys of one installation (--redis-prefix). */
  redisPrefix: "kiln",
  /** With Redis: a running job's claim lasts this long unrenewed; a dead replica's jobs move on after about one to two of it. */
  jobLockMs: 30_000,
  /** A job with no `timeout` ends as FAILURE after this long. */
  jobTimeoutMs: 60 * 60_000,
  /** How often a running job asks the scheduler for its task's state. */
  jobPollMs: 500,
  /** A running job's result (its live progress) is written at most this often. */
  progressWriteMs: 1_000,
  /** URLs of one job dispatched at once (args.concurrent_task_count default). */
  concurrentTaskCount: 8,
  sessionTtlMs: 24 * 60 * 60_000,
  /** Failed sign-ins one client may make for one user name within the window before it gets 429. */
  signInMaxFailures: 5,
  signInWindowMs: 15 * 60_000,
  tokenTtlMs: 365 * 24 * 60 * 60_000,
  perPage: 10,
  maxPerPage: 100,
  /** A peer whose scheduler has not reported it for this long is shown inactive (4 of the schedulers' default report intervals). */
  peerStaleMs: 4 * SCHEDULER.hostsReportMs,
  /** How often the manager looks for pull schedules that are due. */
  pullTickMs: 2_000,
  /** Longest one image of a pull schedule may take in one run. */
  pullImageTimeoutMs: 30 * 60_000,
  /** GET /ready waits this long for the database and Redis (under the probe's timeoutSeconds: 3 in deploy/kubernetes). */
  readinessTimeoutMs: 2_000,
  /** Lines kept in a job's failure log. */
  maxLogLines: 200,
} as const;

/** Values the Open API fills into `args` when the request leaves them out (Dragonfly's Open API documentation). */
export const PREHEAT_DEFAULTS = {
  pieceLength: 4 * MiB,
  filteredQueryParams: DEFAULT_PREHEAT_FILTER,
  platform: "",
  tag: "",
  username: "",
  password: "",
} as const;

export const TOKEN_PREFIX = { pat: "kiln_pat_", session: "kiln_session_" } as const;

/** A cluster's scheduler settings (ClusterConfig) when it was created without them; the rest of ClusterConfig is the manager's (MANAGER.jobRateLimit). */
export const SCHEDULER_CLUSTER_CONFIG_DEFAULTS = {
  candidate_parent_limit: SCHEDULER.parentsPerSchedule,
  filter_parent_limit: SCHEDULER.filterParentLimit,
} as const;
