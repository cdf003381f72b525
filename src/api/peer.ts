/** Wire shapes of a peer's upload port: piece serving and the scheduler's triggers. */
import { z } from "zod";
import { DownloadSpec, TaskId } from "./common.js";
import { ImageReference } from "./puller.js";

export const PEER_PATHS = {
  /** GET /pieces/<taskId>/<n>: one verified piece, digest in `x-kiln-piece-digest`. */
  piece: (taskId: string, n: number) => `/pieces/${taskId}/${n}`,
  /** GET /tasks/<taskId> with optional Range: bytes of verified pieces only. */
  task: (taskId: string) => `/tasks/${taskId}`,
  /** POST: the scheduler asks this peer to fetch a task into its cache. */
  prefetch: "/api/v1/prefetch",
  /** POST: make the node's containerd import an image through this peer's mirror (ImageImportRequest). */
  imageImport: "/api/v1/images/import",
  /** DELETE: the scheduler asks this peer to drop a task (content and metadata); uploads of it in flight are cut. */
  controlTask: (taskId: string) => `/api/v1/tasks/${taskId}`,
  health: "/healthy",
} as const;

/**
 * Header carrying the cluster's upload credential (HostAnnounceReply.uploadCredential) on
 * requests for pieces and tasks: upload ports serve content to members of their cluster only.
 */
export const UPLOAD_CREDENTIAL_HEADER = "x-kiln-upload-credential";

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

/** Manager → scheduler → peer (pull schedules): have the node's container runtime hold an image, pulled through this peer. */
export const ImageImportRequest = z.object({
  /** `registry:5000/team/app:v1` */
  image: ImageReference,
  platform: z
    .string()
    .regex(/^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/)
    .optional(),
  /** The registry speaks plain HTTP. */
  plainHttp: z.boolean().default(false),
  /** The manifest (or index) digest the tag resolved to: nothing to do when the runtime already has it. */
  digest: z.string().max(200).optional(),
  /**
   * The pull schedule's registry credentials, for a private image: sent with the control
   * token, handed to the runtime in a file only the peer can read, never logged or kept.
   */
  credentials: z.object({ username: z.string().max(1024), password: z.string().max(1024) }).optional(),
});
export type ImageImportRequest = z.infer<typeof ImageImportRequest>;
export type ImageImportRequestInput = z.input<typeof ImageImportRequest>;

export const ImageImportReply = z.object({
  /** False when this peer has no container runtime to import into (the image is in its cache only). */
  imported: z.boolean(),
  detail: z.string(),
});
export type ImageImportReply = z.infer<typeof ImageImportReply>;
