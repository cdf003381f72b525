/** Fetches one assigned piece from its parent into the task's storage, verified on the way in. */
import { KilnError } from "../../common/errors.js";
import type { FailureKind, ParentInfo, PieceInfo } from "../../api/scheduler.js";
import type { StoredTask } from "../storage/stored-task.js";
import type { Assignment } from "./dispatcher.js";
import { PieceFetchError, fetchPieceInto, type PieceSink } from "./piece-client.js";

/** Where piece bytes come from (a parent's upload server; a fake in tests). */
export interface PieceSource {
  /** Streams piece `n` of `taskId` as `parent` holds it (unverified) into `sink`; resolves once it all arrived. */
  fetch(parent: ParentInfo, taskId: string, n: number, sink: PieceSink, signal: AbortSignal): Promise<void>;
}

/** Parents' upload servers over HTTP, presenting the cluster's upload `credential()`; a transfer that stalls for `stallMs` fails. */
export function httpPieceSource(stallMs: number, credential: () => string): PieceSource {
  return { fetch: (parent, taskId, n, sink, signal) => fetchPieceInto(parent, taskId, n, sink, stallMs, signal, credential()) };
}

/** Why a piece fetch failed: what a report to the scheduler names (FailureKind), or a parent that is busy. */
export type PieceFailureKind = FailureKind | "busy";

/** Resolves with the stored piece; rejects with what went wrong (see failureKind). */
export async function fetchPiece(source: PieceSource, task: StoredTask, a: Assignment, signal: AbortSignal): Promise<PieceInfo> {
  const writer = task.pieceWriter(a.piece, a.expected);
  try {
    await source.fetch(a.parent, task.taskId, a.piece, writer, signal);
  } catch (err) {
    // No write of this attempt may land after a retry of the piece.
    await writer.abort();
    throw err;
  }
  return task.commitPiece(a.piece, await writer.end(), a.expected);
}

/** Maps whatever a piece fetch threw to the failure kind reported to the scheduler. */
export function failureKind(err: unknown): PieceFailureKind {
  if (err instanceof PieceFetchError) return err.kind;
  if (err instanceof KilnError && err.code === "DIGEST_MISMATCH") return "digest_mismatch";
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ETIMEDOUT") return "timeout";
  return "unreachable";
}
