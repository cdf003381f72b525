/**
 * What a download went through with its parents and its scheduler, kept small, so a
 * download that fails can say why: which parents failed it and how, which pieces it
 * still lacked, what the scheduler last answered and why it went to the origin.
 */
import type { PieceFailureKind } from "./piece-fetcher.js";

interface ParentTrail {
  failures: Partial<Record<PieceFailureKind, number>>;
  lastPiece: number;
  lastMessage: string;
}

/** Parents named in a summary; the rest are counted. */
const NAMED_PARENTS = 3;
const MESSAGE_CHARS = 160;

export class DownloadTrail {
  private readonly parents = new Map<string, ParentTrail>();
  /** Every parent the scheduler named, once however often it named it. */
  private readonly offered = new Set<string>();
  private lastAnswer: { action: string; parents: number; at: number } | undefined;
  private schedulerError: { message: string; at: number } | undefined;
  private originReason: string | undefined;

  /** A schedule answer (registration or poll) and the parents it named. */
  scheduled(action: string, parentIds: string[], now = Date.now()): void {
    const fresh = parentIds.filter((id) => !this.offered.has(id));
    for (const id of fresh) this.offered.add(id);
    this.lastAnswer = { action, parents: fresh.length, at: now };
    this.schedulerError = undefined;
  }

  /** A schedule call that got no usable answer. */
  schedulerFailed(message: string, now = Date.now()): void {
    this.schedulerError = { message: clip(message), at: now };
  }

  pieceFailed(parentId: string, piece: number, kind: PieceFailureKind, message: string): void {
    const p = this.parents.get(parentId) ?? { failures: {}, lastPiece: piece, lastMessage: "" };
    p.failures[kind] = (p.failures[kind] ?? 0) + 1;
    if (kind !== "busy") {
      p.lastPiece = piece;
      p.lastMessage = clip(message);
    }
    this.parents.set(parentId, p);
  }

  /** Why this download went to the origin (the scheduler's word, or no scheduler). */
  wentToOrigin(reason: string): void {
    this.originReason ??= reason;
  }

  /** One line for a failure message: pieces, parents and the scheduler. */
  summary(stored: number, total: number | null, now = Date.now()): string {
    const parts = [`${stored} of ${total ?? "?"} pieces stored`];
    parts.push(this.parentsLine());
    if (this.originReason) parts.push(`went to the origin: ${this.originReason}`);
    if (this.schedulerError) parts.push(`scheduler unanswered for ${secondsSince(this.schedulerError.at, now)}: ${this.schedulerError.message}`);
    else if (this.lastAnswer) {
      const a = this.lastAnswer;
      parts.push(`scheduler's last answer ${secondsSince(a.at, now)} ago: ${a.action}, ${a.parents} new parent${a.parents === 1 ? "" : "s"}`);
    } else parts.push("the scheduler never answered");
    return parts.join("; ");
  }

  private parentsLine(): string {
    if (this.offered.size === 0) return "no parent offered";
    const failing = [...this.parents].filter(([, p]) => Object.keys(p.failures).some((k) => k !== "busy"));
    const busyOnly = this.parents.size - failing.length;
    let line = `${this.offered.size} parent${this.offered.size === 1 ? "" : "s"} offered`;
    if (failing.length === 0) return busyOnly ? `${line}, ${busyOnly} answered busy, none failed` : `${line}, none failed`;
    const named = failing.slice(0, NAMED_PARENTS).map(([id, p]) => {
      const counts = Object.entries(p.failures)
        .map(([kind, n]) => `${n}× ${kind}`)
        .join(", ");
      return `${id} (${counts}; last: piece ${p.lastPiece}, ${p.lastMessage})`;
    });
    line += `, ${failing.length} failed: ${named.join("; ")}`;
    if (failing.length > NAMED_PARENTS) line += ` and ${failing.length - NAMED_PARENTS} more`;
    return line;
  }
}

function clip(s: string): string {
  return s.length > MESSAGE_CHARS ? `${s.slice(0, MESSAGE_CHARS - 1)}…` : s;
}

function secondsSince(at: number, now: number): string {
  return `${((now - at) / 1000).toFixed(1)} s`;
}
