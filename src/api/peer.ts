/** Wire shapes of a peer's upload port: piece serving and the scheduler's triggers. */
import { z } from "zod";
import { DownloadSpec, TaskId } from "./common.js";

export const PEER_PATHS = {
  /** GET /pieces/<taskId>/<n>: one verified piece, digest in `x-kiln-piece-digest`. */
  piece: (taskId: string, n: number) => `/pieces/${taskId}/${n}`,
  /** GET /tasks/<taskId> with optional Range: bytes of verified pieces only. */
  task: (taskId: string) => `/tasks/${taskId}`,
  /** POST: the scheduler asks this peer to fetch a task into its cache. */
  prefetch: "/api/v1/prefetch",
  /** DELETE: the scheduler asks this peer to drop a task (content and metadata); uploads of it in flight are cut. */
  controlTask: (taskId: string) => `/api/v1/tasks/${taskId}`,
  health: "/healthy",
} as const;

export const PrefetchRequest = z.object({
  taskId: TaskId,
  download: DownloadSpec,
});
export type PrefetchRequest = z.infer<typeof PrefetchRequest>;
export type PrefetchRequestInput = z.input<typeof PrefetchRequest>;

export const PrefetchReply = z.object({ accepted: z.boolean(), taskId: TaskId });
export type PrefetchReply = z.infer<typeof PrefetchReply>;

export const PeerDeleteReply = z.object({
  /** False when this peer did not hold the task (nothing to do). */
  deleted: z.boolean(),
  /** Bytes of content it freed. */
  bytes: z.number().int().min(0),
});
export type PeerDeleteReply = z.infer<typeof PeerDeleteReply>;
