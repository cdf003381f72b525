/** Table shapes of the manager database (kysely types). Timestamps are ISO-8601 UTC strings. */
import type { Generated, Insertable, Selectable, Updateable } from "kysely";

export interface UsersTable {
  id: Generated<number>;
  name: string;
  email: string;
  password_hash: string;
  state: string;
  /** 1 until the first password change of a generated password. */
  must_change_password: number;
  /** root or guest (Dragonfly's roles). */
  role: string;
  created_at: string;
  updated_at: string;
}

export interface SessionsTable {
  id: Generated<number>;
  user_id: number;
  token_hash: string;
  expires_at: string;
  created_at: string;
}

export interface PersonalAccessTokensTable {
  id: Generated<number>;
  name: string;
  bio: string;
  token_hash: string;
  /** Comma-separated scopes, e.g. "job,cluster". */
  scopes: string;
  state: string;
  expired_at: string;
  user_id: number;
  created_at: string;
  updated_at: string;
}

export interface SchedulerClustersTable {
  id: Generated<number>;
  name: string;
  bio: string;
  /** JSON: ClusterConfig */
  config: string;
  /** JSON: ClusterScopes (null: none, as before migration 0005) */
  scopes: string | null;
  is_default: number;
  created_at: string;
  updated_at: string;
}

/** Schedulers and seed peers share one shape: a registered, kept-alive member of a cluster. */
export interface MembersTable {
  id: Generated<number>;
  scheduler_cluster_id: number;
  hostname: string;
  ip: string;
  port: number;
  /** Scheduler: its API URL. Seed peer: its upload URL. */
  url: string;
  /** Seed peer type (super/strong/weak); "" for schedulers. */
  type: string;
  state: string;
  last_keepalive_at: string;
  created_at: string;
  updated_at: string;
}

export interface JobsTable {
  id: Generated<number>;
  task_id: string;
  type: string;
  state: string;
  bio: string;
  /** JSON: stored preheat args without the password, defaults not filled. */
  args: string;
  /** JSON: credentials needed while the job runs; cleared when it ends. */
  secret: string | null;
  /** JSON: JobResult */
  result: string | null;
  user_id: number | null;
  /** The job's URLs, one per line (searchable copy of args.url / args.urls). */
  urls: string | null;
  deadline_at: string;
  created_at: string;
  updated_at: string;
}

export interface JobClustersTable {
  job_id: number;
  scheduler_cluster_id: number;
}

export interface PeersTable {
  id: Generated<number>;
  scheduler_cluster_id: number;
  scheduler_id: number;
  host_id: string;
  hostname: string;
  ip: string;
  port: number;
  proxy_port: number | null;
  metrics_port: number | null;
  type: string;
  idc: string;
  location: string;
  /** JSON object of label → value. */
  labels: string;
  version: string;
  /** active while its scheduler reports it; inactive once a report leaves it out. */
  state: string;
  last_seen_at: string;
  created_at: string;
  updated_at: string;
  /** bigint: some drivers return strings. */
  task_count: number | string;
  bytes_stored: number | string;
  free_disk_bytes: number | string;
  uploaded_bytes: number | string;
  swarm_bytes: number | string;
  origin_bytes: number | string;
}

export interface PeerTrafficTable {
  scheduler_cluster_id: number;
  /** Start of the minute (RFC 3339, seconds 00). */
  minute: string;
  swarm_bytes: number | string;
  origin_bytes: number | string;
}

export interface PullSchedulesTable {
  id: Generated<number>;
  name: string;
  bio: string;
  spec: string;
  secret: string | null;
  enabled: number;
  state: string;
  last_run_at: string | null;
  next_run_at: string | null;
  status: string | null;
  created_at: string;
  updated_at: string;
}

export interface ManagerDatabase {
  users: UsersTable;
  sessions: SessionsTable;
  personal_access_tokens: PersonalAccessTokensTable;
  scheduler_clusters: SchedulerClustersTable;
  schedulers: MembersTable;
  seed_peers: MembersTable;
  jobs: JobsTable;
  job_scheduler_clusters: JobClustersTable;
  peers: PeersTable;
  peer_traffic: PeerTrafficTable;
  pull_schedules: PullSchedulesTable;
}

export type UserRow = Selectable<UsersTable>;
export type TokenRow = Selectable<PersonalAccessTokensTable>;
export type ClusterRow = Selectable<SchedulerClustersTable>;
export type MemberRow = Selectable<MembersTable>;
export type PeerRow = Selectable<PeersTable>;
export type PullScheduleRow = Selectable<PullSchedulesTable>;
export type JobRow = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type JobUpdate = Updateable<JobsTable>;
export type MemberTable = "schedulers" | "seed_peers";
