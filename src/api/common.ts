import { z } from "zod";
import { TASK_ID_PATTERN } from "../common/task-id-pattern.js";
import { PIECE } from "../common/defaults.js";

/** Whether `s` compiles as a JavaScript regular expression (for schemas that take patterns). */
export function compilesAsRegExp(s: string): boolean {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

export const TaskId = z.string().regex(TASK_ID_PATTERN, "must be a hex task ID (64 or 128 lowercase hex characters)");
/** Peer and host IDs appear in URLs; keep them to a safe alphabet. */
export const SafeId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._:-]+$/, "may contain only letters, digits, '.', '_', ':' and '-'");
export const Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, "must be sha256:<64 hex>");

export const ErrorBody = z.object({
  message: z.string(),
  code: z.string().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** The answer of a call that has nothing to return. */
export const Ok = z.object({ ok: z.literal(true) });

/** What went wrong with a task, carried from the peer that saw it to everyone waiting. */
export const TaskError = z.object({
  code: z.string(),
  /** HTTP status to answer clients with (the origin's own status for ORIGIN_STATUS). */
  status: z.number().int().min(100).max(599),
  message: z.string(),
});
export type TaskError = z.infer<typeof TaskError>;

/** Everything needed to fetch a task from its origin and to compute its ID. */
export const DownloadSpec = z.object({
  url: z.string().url(),
  /** Request headers for the origin (e.g. Authorization); kept in memory only. */
  headers: z.record(z.string(), z.string()).default({}),
  tag: z.string().default(""),
  application: z.string().default(""),
  filteredQueryParams: z.array(z.string()).default([]),
  /** Explicit piece length; part of the task ID when set. */
  pieceLength: z.number().int().min(PIECE.minExplicit).max(PIECE.maxExplicit).optional(),
});
export type DownloadSpec = z.infer<typeof DownloadSpec>;
export type DownloadSpecInput = z.input<typeof DownloadSpec>;

/**
 * Who the origin serves a task's content to, as the peer that fetched it from the origin
 * found out; it travels with the task (scheduler task info, every holder's metadata).
 * `anonymous`: the origin serves it without credentials, so any client may be served it.
 * Otherwise only clients the origin serves with their own credentials, asking for it at
 * this origin, may be.
 */
export const OriginAccess = z.object({
  anonymous: z.boolean(),
  /** scheme://host[:port] of the origin the content came from. */
  origin: z.string().max(2048),
  /** The repository it was fetched from, when the task is a registry blob. */
  repository: z.string().max(1024).optional(),
});
export type OriginAccess = z.infer<typeof OriginAccess>;

/**
 * Header carrying the shared cluster secret (KILN_CLUSTER_SECRET), when one is set:
 * on membership calls to the manager and on every scheduler API call.
 */
export const CLUSTER_SECRET_HEADER = "x-kiln-cluster-secret";
