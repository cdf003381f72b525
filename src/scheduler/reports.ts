/** What peers report: pieces they hold (checked against the canonical digests), parents that failed them, their result. */
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { TaskError } from "../api/common.js";
import type { FailureReport, PeerResult, PieceReport, PieceReportReply } from "../api/scheduler.js";
import type { Task } from "./resource/task.js";
import type { TaskManager } from "./resource/tasks.js";

export class Reports {
  constructor(
    private readonly tasks: TaskManager,
    private readonly log: Logger,
    /** Called after a peer's result was recorded (the preheat queue moves on). */
    private readonly onResult: (task: Task) => void,
  ) {}

  /**
   * Only the origin fetcher may set the layout or report a piece first; anyone else's
   * digests must match. Only what changes the schedule answers (a layout, a new digest,
   * a peer distrusted) wakes the task's long polls: children hear of each other's pieces
   * through the have feeds, so a plain report costs the swarm nothing.
   */
  pieces(taskId: string, peerId: string, report: PieceReport): PieceReportReply {
    const peer = this.tasks.peer(taskId, peerId);
    const task = peer.task;
    const isSource = peer.state === "back_to_source";
    let changed = false;
    if (report.contentLength !== undefined || report.pieceLength !== undefined || report.validator !== undefined || report.access !== undefined) {
      changed = true;
      if (!isSource) throw new KilnError("CONFLICT", "only the peer fetching from the origin may set content and piece length");
      task.setLayout(report);
      // The first version seen is the task's: a later fetcher resumes against it (If-Range).
      if (report.validator !== undefined) task.validator ??= report.validator;
      if (report.access !== undefined) task.access ??= report.access;
    }
    const wasTrusted = !peer.untrusted;
    const rejected: PieceReportReply["rejected"] = [];
    const total = task.totalPieces;
    for (const piece of report.pieces) {
      if (total !== null && piece.number >= total) {
        rejected.push({ number: piece.number, reason: `the task has ${total} pieces` });
        continue;
      }
      const canonical = task.digests.get(piece.number);
      if (canonical) {
        if (canonical.digest !== piece.digest || canonical.length !== piece.length) {
          peer.distrust();
          rejected.push({ number: piece.number, reason: `digest ${piece.digest} differs from the task's ${canonical.digest}` });
          continue;
        }
      } else if (isSource) {
        task.addDigest(piece, true);
        changed = true;
      } else {
        rejected.push({ number: piece.number, reason: "no digest known for this piece; only the origin fetcher may report it first" });
        continue;
      }
      peer.addPiece(piece.number);
    }
    if (wasTrusted && peer.untrusted) {
      this.log.warn({ task: taskId, peer: peerId }, "peer reported a wrong piece digest; no longer offered as a parent");
      changed = true;
    }
    if (changed) task.touch();
    else task.lastActivity = Date.now();
    return { rejected };
  }

  /**
   * A parent that answered with an error or a wrong piece is not offered to that child
   * again, and a corrupt piece makes it untrusted for everyone. A stall or a dropped
   * connection only counts against its score: an overloaded seed may be the one holder of
   * a piece, and blocking it would leave the child waiting for good.
   */
  failure(taskId: string, peerId: string, report: FailureReport): void {
    const child = this.tasks.peer(taskId, peerId);
    const parent = child.task.peers.get(report.parentId);
    if (report.kind === "digest_mismatch" || report.kind === "http_error") child.blockedParents.add(report.parentId);
    if (parent) {
      parent.failedAsParent();
      if (report.kind === "digest_mismatch") {
        parent.distrust();
        this.log.warn({ task: taskId, parent: parent.id, reporter: peerId, piece: report.pieceNumber }, "parent served a piece that failed its digest");
      }
    }
    // An untrusted parent changes every child's answer; a stall or a refusal only this child's, which asks again anyway.
    if (report.kind === "digest_mismatch") child.task.touch();
    else child.task.lastActivity = Date.now();
  }

  /** Success must hold every piece at the task's length; an origin failure of the origin fetcher fails the task. */
  result(taskId: string, peerId: string, result: PeerResult): void {
    const peer = this.tasks.peer(taskId, peerId);
    const task = peer.task;
    if (result.state === "succeeded") {
      task.checkLayout({ contentLength: result.contentLength });
      const total = task.totalPieces;
      if (total !== null && peer.pieces.size < total) throw new KilnError("CONFLICT", `peer holds ${peer.pieces.size} of ${total} pieces`);
      peer.to("succeeded");
      if (task.state === "running") task.succeeded();
    } else {
      const wasSource = peer.state === "back_to_source";
      peer.error = result.error;
      peer.to("failed");
      if (wasSource && isOriginError(result.error) && task.state === "running") {
        task.originFailed(result.error);
        this.log.warn({ task: taskId, error: result.error.message }, "task failed at the origin");
      }
    }
    this.onResult(task);
    // A finished peer is a new parent for those that want one; a failure may leave the task without its origin fetcher.
    if (result.state === "succeeded") task.holderAppeared();
    else task.touch();
  }
}

function isOriginError(e: TaskError): boolean {
  return e.code === "ORIGIN_STATUS" || e.code === "ORIGIN_UNREACHABLE" || e.code === "DIGEST_MISMATCH";
}
