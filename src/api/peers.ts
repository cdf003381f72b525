/**
 * Wire shapes of the peer inventory: what a peer tells its scheduler about its host
 * (labels, ports, disk, traffic counters), what a scheduler reports to the manager,
 * and the manager's peer list and traffic series. Bundled into the web console too,
 * so nothing here may need Node.
 */
import { z } from "zod";
import { PageQuery } from "./paging.js";

/** Kubernetes-style label keys (optional DNS prefix + name) and values. */
const LabelKey = z
  .string()
  .min(1)
  .max(317)
  .regex(/^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, "must be a label key like kubernetes.io/arch or zone");
const LabelValue = z
  .string()
  .max(63)
  .regex(/^(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, "must be a label value: up to 63 letters, digits, '-', '_' or '.'");
export const Labels = z
  .record(LabelKey, LabelValue, {
    // zod reports a bad key as "Invalid key in record"; say what a key must be.
    error: (iss) => (iss.code === "invalid_key" ? "must be a label key like kubernetes.io/arch or zone" : undefined),
  })
  .refine((l) => Object.keys(l).length <= 256, "at most 256 labels");
export type Labels = z.infer<typeof Labels>;

/** Counters and gauges a peer reports with every announce; counters only grow within one process. */
export const HostStats = z.object({
  /** Tasks held in the cache, complete or not. */
  tasks: z.number().int().min(0),
  /** Bytes of task content on disk. */
  bytesStored: z.number().int().min(0),
  /** Free bytes on the file system of the data directory. */
  freeDiskBytes: z.number().int().min(0),
  /** Bytes served to other peers. */
  uploadedBytes: z.number().int().min(0),
  /** Bytes this host got from other peers (the swarm). */
  swarmBytes: z.number().int().min(0),
  /** Bytes this host fetched from origins (registries, file servers). */
  originBytes: z.number().int().min(0),
});
export type HostStats = z.infer<typeof HostStats>;

export const HostPorts = z.object({
  upload: z.number().int().min(1).max(65535),
  proxy: z.number().int().min(1).max(65535).optional(),
  metrics: z.number().int().min(1).max(65535).optional(),
});
export type HostPorts = z.infer<typeof HostPorts>;

/** One host as a scheduler knows it (scheduler → manager, and the scheduler's own host list). */
export const HostRecord = z.object({
  id: z.string().min(1).max(200),
  hostname: z.string().min(1).max(255),
  ip: z.string().min(1).max(64),
  /** Dragonfly's host types: "normal" for peers, "super" for seed peers. */
  type: z.enum(["normal", "super"]),
  ports: HostPorts,
  labels: Labels,
  idc: z.string().max(255),
  location: z.string().max(255),
  version: z.string().max(64),
  stats: HostStats,
  /** When this host first announced itself to the scheduler, and last did (RFC 3339). */
  createdAt: z.string(),
  lastSeenAt: z.string(),
});
export type HostRecord = z.infer<typeof HostRecord>;

/** Scheduler → manager: every host the scheduler knows now (a full snapshot, not a delta). */
export const HostsReport = z.object({ hosts: z.array(HostRecord).max(100_000) });
export type HostsReport = z.infer<typeof HostsReport>;

export const PeerState = z.enum(["active", "inactive"]);

/** A peer in the manager's inventory (console API `GET /api/v1/peers`), named as Dragonfly's manager names peer fields. */
export const PeerView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  host_id: z.string(),
  hostname: z.string(),
  ip: z.string(),
  port: z.number().int(),
  proxy_port: z.number().int().nullable(),
  metrics_port: z.number().int().nullable(),
  type: z.enum(["normal", "super"]),
  idc: z.string(),
  location: z.string(),
  labels: Labels,
  version: z.string(),
  /** active while its scheduler reports it; inactive once it stops. */
  state: PeerState,
  task_count: z.number().int(),
  bytes_stored: z.number().int(),
  free_disk_bytes: z.number().int(),
  uploaded_bytes: z.number().int(),
  swarm_bytes: z.number().int(),
  origin_bytes: z.number().int(),
  last_seen_at: z.string(),
  scheduler_cluster_id: z.number().int(),
});
export type PeerView = z.infer<typeof PeerView>;

/** Filters of the peer list: all server-side (a console never fetches every peer to search them). */
export const ListPeersQuery = PageQuery.extend({
  scheduler_cluster_id: z.coerce.number().int().min(1).optional(),
  /** Case-insensitive substring of hostname or IP. */
  q: z.string().max(255).optional(),
  type: z.enum(["normal", "super"]).optional(),
  state: PeerState.optional(),
  /** Label selector `k=v,k2=v2` (every pair must match). */
  labels: z.string().max(4096).optional(),
});
export type ListPeersQuery = z.infer<typeof ListPeersQuery>;

/** Bytes served from the swarm vs fetched from origins, per time bucket (for the overview chart). */
export const TrafficQuery = z.object({
  scheduler_cluster_id: z.coerce.number().int().min(1).optional(),
  /** Window length in minutes, ending now (default 60, at most 7 days). */
  minutes: z.coerce.number().int().min(1).max(10_080).default(60),
});
export type TrafficQuery = z.infer<typeof TrafficQuery>;

export const TrafficView = z.object({
  bucket_seconds: z.number().int(),
  points: z.array(z.object({ at: z.string(), swarm_bytes: z.number().int(), origin_bytes: z.number().int() })),
  /** Totals over the window: bytes the origins did not have to send. */
  swarm_bytes: z.number().int(),
  origin_bytes: z.number().int(),
});
export type TrafficView = z.infer<typeof TrafficView>;
