/** A stored task's metadata (meta.json): one schema for what is written and what is read back. */
import { z } from "zod";
import { OriginAccess } from "../../api/common.js";
import { PieceInfo } from "../../api/scheduler.js";

export const TaskMeta = z.object({
  taskId: z.string(),
  /** The URL with filtered query parameters removed; never credentials. */
  url: z.string(),
  /** The rest of the task's identity, to register it again after a restart. */
  tag: z.string().default(""),
  application: z.string().default(""),
  explicitPieceLength: z.number().int().nullable().default(null),
  contentLength: z.number().int().nullable(),
  pieceLength: z.number().int().nullable(),
  /**
   * Who the origin serves the content to: set before the layout (by this peer when it
   * fetched from the origin, else from the scheduler's task info); null when unknown.
   * Metadata written before this field existed does not know: its content is treated as
   * needing credentials.
   */
  access: OriginAccess.nullable().default(null),
  pieces: z.array(PieceInfo),
  complete: z.boolean(),
  /**
   * False from completion until the content is known to be on disk (flushed in the
   * background). Metadata written before this field existed was written after the flush.
   */
  durable: z.boolean().default(true),
  /** The origin's ETag or Last-Modified the pieces came with, to resume against (If-Range) after a restart. */
  validator: z.string().nullable().default(null),
  /** The peer ID this peer holds the task under at the scheduler (to leave it when the task goes). */
  peerId: z.string().nullable().default(null),
  /**
   * The content file's mtime (ns, decimal) when the task completed. `kiln get` may hard-link
   * an output to the content file: if that output is edited, the mtime moves and the task is
   * dropped instead of served (StoredTask.contentUnchanged). Null before completion; metadata
   * written before this field existed takes it from the content file when read back.
   */
  contentMtimeNs: z.string().regex(/^\d+$/).nullable().default(null),
  createdAt: z.number(),
  /** Also the metadata file's mtime, so garbage collection can judge a task without reading it. */
  lastAccess: z.number(),
});
export type TaskMeta = z.infer<typeof TaskMeta>;
