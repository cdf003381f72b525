/**
 * Wire shapes of jobs (/oapi/v1/jobs, /api/v1/jobs): creating one of each type, the job
 * as listed and shown, and its result. The args of each type are in preheat.ts and
 * tasks.ts. Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { boundedInt, ShortString } from "./fields.js";
import { ClusterRef } from "./clusters.js";
import { PreheatArgsInput, PreheatArgsView, UrlProgress } from "./preheat.js";
import { ImageDistribution, ImageDistributionArgsInput, JOB_TYPES, SyncPeersArgsInput, TaskHolder, TaskJobArgs, TaskRefArgsInput } from "./tasks.js";

export const JobState = z.enum(["PENDING", "SUCCESS", "FAILURE"]);
export type JobState = z.infer<typeof JobState>;

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
