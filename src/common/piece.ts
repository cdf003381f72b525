import { KilnError } from "./errors.js";
import { PIECE } from "./defaults.js";

/** Default piece length: content length / 500 rounded up to a power of two, clamped. */
export function defaultPieceLength(contentLength: number | undefined): number {
  if (contentLength === undefined || contentLength <= 0) return PIECE.minDefault;
  const raw = Math.ceil(contentLength / PIECE.targetCount);
  const pow2 = 2 ** Math.ceil(Math.log2(raw));
  return Math.min(PIECE.maxDefault, Math.max(PIECE.minDefault, pow2));
}

export function validateExplicitPieceLength(length: number): number {
  if (!Number.isInteger(length) || length < PIECE.minExplicit || length > PIECE.maxExplicit) {
    throw new KilnError("BAD_REQUEST", `piece length must be an integer between ${PIECE.minExplicit} and ${PIECE.maxExplicit} bytes, got ${length}`);
  }
  return length;
}

export function pieceCount(contentLength: number, pieceLength: number): number {
  return contentLength === 0 ? 0 : Math.ceil(contentLength / pieceLength);
}

/** Bytes [start, end) of a content. */
export interface ByteRange {
  start: number;
  /** Exclusive. */
  end: number;
}

/** Byte range [start, end) of piece `n`. */
export function pieceRange(n: number, contentLength: number, pieceLength: number): ByteRange {
  const start = n * pieceLength;
  return { start, end: Math.min(contentLength, start + pieceLength) };
}

/** A task's layout as known so far (null: not known yet). */
export interface Layout {
  contentLength: number | null;
  pieceLength: number | null;
}

/** What someone claims about a task's layout; absent (or null) fields claim nothing. */
export interface LayoutClaim {
  contentLength?: number | null;
  pieceLength?: number | null;
}

/**
 * Why `claim` cannot be the layout of a task already laid out as `known` (a piece length or
 * content length that differs from one already fixed), or undefined when it fits. The peer's
 * storage and the scheduler apply this one rule.
 */
export function layoutConflict(known: Layout, claim: LayoutClaim): string | undefined {
  if (claim.pieceLength != null && known.pieceLength !== null && known.pieceLength !== claim.pieceLength) {
    return `piece length ${claim.pieceLength} differs from the task's ${known.pieceLength}`;
  }
  if (claim.contentLength != null && known.contentLength !== null && known.contentLength !== claim.contentLength) {
    return `content length ${claim.contentLength} differs from the task's ${known.contentLength}`;
  }
  return undefined;
}
