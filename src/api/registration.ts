/**
 * Wire shapes of membership: schedulers and seed peers registering with the manager and
 * keeping alive (with the cluster secret), and a peer asking which schedulers to use.
 * Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { ipVersion } from "../common/ip.js";
import { ClusterConfig } from "./clusters.js";
import { HttpUrl } from "./fields.js";

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
  /** A scheduler's registration: the API URLs of the other active schedulers of its cluster (it asks them who has a task new to it). */
  schedulers: z.array(z.string()).optional(),
});
export type RegistrationReply = z.infer<typeof RegistrationReply>;

export const KeepAliveReply = z.object({
  ok: z.literal(true),
  scheduler_cluster_id: z.number().int(),
  config: ClusterConfig,
  /** A scheduler's keepalive: the API URLs of the other active schedulers of its cluster, as at registration. */
  schedulers: z.array(z.string()).optional(),
});
export type KeepAliveReply = z.infer<typeof KeepAliveReply>;

/** A peer asking which schedulers to use: what it knows about its own host. */
export const SchedulerSearchQuery = z.object({
  hostname: z.string().min(1).max(255),
  ip: z.string().refine((s) => ipVersion(s) !== 0, "must be an IP address"),
  idc: z.string().max(255).default(""),
  location: z.string().max(1024).default(""),
  /** A seed peer of that cluster (--cluster-id): its schedulers, whatever the scopes say. */
  scheduler_cluster_id: z.coerce.number().int().min(1).optional(),
});
export type SchedulerSearchQuery = z.infer<typeof SchedulerSearchQuery>;
export type SchedulerSearchQueryInput = z.input<typeof SchedulerSearchQuery>;

export const SchedulerSearchReply = z.object({
  scheduler_cluster_id: z.number().int(),
  scheduler_cluster_name: z.string(),
  /** Active schedulers of that cluster, freshest keepalive first; a peer ranks a task ID over their `url`s (common/rendezvous.ts) to find its scheduler. */
  schedulers: z.array(z.object({ id: z.number().int(), hostname: z.string(), ip: z.string(), port: z.number().int(), url: z.string() })),
});
export type SchedulerSearchReply = z.infer<typeof SchedulerSearchReply>;
