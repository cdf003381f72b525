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
  /**
   * GET /feed/<taskId>: the pieces this peer holds of the task, as they land (a "have"
   * feed, as BitTorrent's have messages): a kept-open answer of HAVE_FEED lines.
   */
  feed: (taskId: string) => `/feed/${taskId}`,
  health: "/healthy",
} as const;

/**
 * The have feed's answer: text lines, `bits <base64 bitmap>` first (what the parent holds
 * when the child subscribes), then `have <n>` as each further piece is verified. The
 * child keeps the connection for as long as it downloads; a parent that is deleting the
 * task or shutting down ends it.
 */
export const HAVE_FEED_CONTENT_TYPE = "application/x-kiln-have-feed";

export type HaveFeedLine = { type: "bits"; base64: string } | { type: "have"; piece: number };

export function encodeHaveFeedLine(line: HaveFeedLine): string {
  return line.type === "bits" ? `bits ${line.base64}\n` : `have ${line.piece}\n`;
}

/** Undefined for a line that is neither (the child drops such a parent). */
export function decodeHaveFeedLine(text: string): HaveFeedLine | undefined {
  const space = text.indexOf(" ");
  const kind = text.slice(0, space);
  const value = text.slice(space + 1);
  if (kind === "have" && /^\d{1,7}$/.test(value)) return { type: "have", piece: Number(value) };
  if (kind === "bits" && /^[A-Za-z0-9+/]*={0,2}$/.test(value)) return { type: "bits", base64: value };
  return undefined;
}

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
