/**
 * Wire shapes of the task-management jobs (Dragonfly's get_task, delete_task,
 * get_image_distribution and sync_peers): their `args` and what their results add
 * to a job's result. Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { TASK_ID_PATTERN } from "../common/task-id-pattern.js";

export const TASK_JOB_TYPES = ["get_task", "delete_task", "get_image_distribution", "sync_peers"] as const;
export const JOB_TYPES = ["preheat", ...TASK_JOB_TYPES] as const;
export const JobType = z.enum(JOB_TYPES, { error: `must be one of ${JOB_TYPES.join(", ")}` });
export type JobType = z.infer<typeof JobType>;

/** Dragonfly's host types: "normal" for peers, "super" for seed peers. */
export const HostType = z.enum(["normal", "super"]);
export type HostType = z.infer<typeof HostType>;

export const hostTypeOf = (isSeed: boolean): HostType => (isSeed ? "super" : "normal");

/** Where one host stands with one task. */
export const HolderState = z.enum(["finished", "downloading", "failed"]);
export type HolderState = z.infer<typeof HolderState>;

/** A peer that holds a task or part of it (Dragonfly's get_task `peers` entries, plus what kiln knows). */
export const TaskHolder = z.object({
  /** The peer ID. */
  id: z.string(),
  task_id: z.string().regex(TASK_ID_PATTERN),
  host_id: z.string(),
  hostname: z.string(),
  ip: z.string(),
  /** The host's upload port (with the IP, tells hosts that share a hostname apart). */
  port: z.number().int().optional(),
  host_type: HostType,
  state: HolderState,
  finished_pieces: z.number().int(),
  total_pieces: z.number().int().nullable(),
  content_length: z.number().int().nullable(),
  /** When the peer registered the task, and last fetched or served a piece of it (RFC 3339). */
  created_at: z.string(),
  updated_at: z.string(),
  scheduler_cluster_id: z.number().int(),
});
export type TaskHolder = z.infer<typeof TaskHolder>;

/** get_image_distribution: the image's layers and, per host, which of them it holds. */
export const ImageDistribution = z.object({
  manifest_digest: z.string(),
  platform: z.string(),
  layers: z.array(z.object({ url: z.string(), digest: z.string(), task_id: z.string(), size: z.number().int() })),
  peers: z.array(
    z.object({
      host_id: z.string(),
      hostname: z.string(),
      ip: z.string(),
      host_type: HostType,
      scheduler_cluster_id: z.number().int(),
      layers: z.array(z.object({ digest: z.string(), state: HolderState, finished_pieces: z.number().int(), total_pieces: z.number().int().nullable() })),
    }),
  ),
});
export type ImageDistribution = z.infer<typeof ImageDistribution>;
