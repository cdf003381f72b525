/**
 * What one registered download tells the scheduler: finished pieces in batches,
 * the task layout when this peer found it at the origin, failed parents, and the
 * result. Piece reports go out in order (layout before pieces, pieces before the
 * result); a failed report is logged, never fatal to the download.
 */
import { PEER } from "../../common/defaults.js";
import type { Logger } from "../../common/logger.js";
import type { OriginAccess } from "../../api/common.js";
import type { FailureReport, PeerResult, PieceInfo } from "../../api/scheduler.js";
import type { SessionScheduler } from "./scheduler-port.js";

export interface Layout {
  contentLength?: number | null;
  pieceLength?: number;
  /** The origin's ETag or Last-Modified (origin fetcher only). */
  validator?: string;
  /** Who the origin serves the content to (origin fetcher only). */
  access?: OriginAccess;
}

export class TaskReporter {
  private pending: PieceInfo[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Piece reports sent so far. */
  sent = 0;

  constructor(
    private readonly scheduler: SessionScheduler,
    private readonly taskId: string,
    private readonly peerId: string,
    private readonly log: Logger,
    /** Pieces verified within this window go out in one report. */
    public delayMs: number = PEER.reportDelayMs,
  ) {}

  /** Queues a verified piece; it is reported within `delayMs`. */
  piece(info: PieceInfo): void {
    this.pending.push(info);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.delayMs);
  }

  /** Sends queued pieces (and `layout`, first) now; resolves when every earlier report is done. */
  flush(layout: Layout = {}): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const pieces = this.pending;
    this.pending = [];
    const noLayout = layout.contentLength === undefined && layout.pieceLength === undefined && layout.validator === undefined && layout.access === undefined;
    if (!pieces.length && noLayout) return this.chain;
    this.sent++;
    this.chain = this.chain.then(async () => {
      try {
        const r = await this.scheduler.reportPieces(this.taskId, this.peerId, { ...layout, pieces });
        if (r.rejected.length) this.log.warn({ rejected: r.rejected.slice(0, 3) }, "scheduler rejected piece reports");
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "piece report failed");
      }
    });
    return this.chain;
  }

  /** A parent failed a piece: the scheduler stops offering it to this peer (and distrusts it on a digest mismatch). */
  failure(report: FailureReport): void {
    this.scheduler.reportFailure(this.taskId, this.peerId, { ...report, message: report.message.slice(0, 2000) }).catch(() => undefined);
  }

  /** Flushes the queued pieces, then reports the result. */
  async result(result: PeerResult): Promise<void> {
    await this.flush();
    await this.scheduler.reportResult(this.taskId, this.peerId, result).catch((err) => this.log.warn({ err: (err as Error).message }, "result report failed"));
  }
}
