/**
 * Wire shapes of the task-management jobs (Dragonfly's get_task, delete_task,
 * get_image_distribution and sync_peers): their `args` and what their results add
 * to a job's result. Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { TASK_ID_PATTERN } from "../common/task-id-pattern.js";
import { FilterParams, Headers, HttpUrl, MANIFEST_PATH, PieceLength, Platform, ShortString, Timeout } from "./fields.js";

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
      /** The host's upload port: with the IP it tells apart hosts that share a hostname. */
      port: z.number().int().optional(),
      host_type: HostType,
      scheduler_cluster_id: z.number().int(),
      layers: z.array(z.object({ digest: z.string(), state: HolderState, finished_pieces: z.number().int(), total_pieces: z.number().int().nullable() })),
    }),
  ),
});
export type ImageDistribution = z.infer<typeof ImageDistribution>;

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

/**
 * get_task / delete_task `args`: a task ID, or a URL with what the task ID is computed
 * from (tag, application, filtered query params, an explicit piece length), exactly as
 * a pull through a peer computes it.
 */
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
