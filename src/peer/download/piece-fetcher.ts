/** Fetches one assigned piece from its parent into the task's storage, verified on the way in. */
import type { Readable } from "node:stream";
import { KilnError } from "../../common/errors.js";
import type { ParentInfo, PieceInfo } from "../../api/scheduler.js";
import type { StoredTask } from "../storage/stored-task.js";
import type { Assignment } from "./dispatcher.js";
import { PieceFetchError, openPiece } from "./piece-client.js";

/** Where piece bytes come from (a parent's upload server; a fake in tests). */
export interface PieceSource {
  /** The bytes of piece `n` of `taskId` as `parent` holds them, unverified. */
  open(parent: ParentInfo, taskId: string, n: number, signal: AbortSignal): Promise<Readable>;
}

/** Parents' upload servers over HTTP; a transfer that stalls for `stallMs` fails. */
export function httpPieceSource(stallMs: number): PieceSource {
  return { open: (parent, taskId, n, signal) => openPiece(parent, taskId, n, stallMs, signal) };
}

export type PieceFailureKind = "digest_mismatch" | "unreachable" | "timeout" | "http_error" | "busy";

/** Resolves with the stored piece; rejects with what went wrong (see failureKind). */
export async function fetchPiece(source: PieceSource, task: StoredTask, a: Assignment, signal: AbortSignal): Promise<PieceInfo> {
  const body = await source.open(a.parent, task.taskId, a.piece, signal);
  return task.writePiece(a.piece, body, a.expected);
}

/** Maps whatever a piece fetch threw to the failure kind reported to the scheduler. */
export function failureKind(err: unknown): PieceFailureKind {
  if (err instanceof PieceFetchError) return err.kind;
  if (err instanceof KilnError && err.code === "DIGEST_MISMATCH") return "digest_mismatch";
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ETIMEDOUT") return "timeout";
  return "unreachable";
}
