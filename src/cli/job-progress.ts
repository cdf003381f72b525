/**
 * How `kiln preheat` (and the task commands) show a running job: one progress line
 * (bytes and pieces done of total, rate, hosts fetching, tasks done) and each new
 * log line as it arrives. Pure text; follow() in preheat.ts draws it.
 */
import type { JobView } from "../api/jobs.js";
import { formatBytes } from "../common/format-bytes.js";

/** Percent done: by bytes once every size is known, else by finished tasks. */
export function percentDone(job: JobView): number {
  const p = job.result?.progress;
  if (!p) return 0;
  if (p.bytes_total) return Math.min(100, Math.floor((100 * (p.bytes_done ?? 0)) / p.bytes_total));
  return p.total ? Math.floor((100 * (p.succeeded + p.failed)) / p.total) : 0;
}

/** "12.0 MiB of 24.0 MiB · 3/6 pieces · 4.0 MiB/s · 1 host fetching · 0/1 tasks (0 failed)". */
export function progressSummary(job: JobView): string {
  const p = job.result?.progress;
  if (!p) return "resolving";
  const parts: string[] = [];
  if (p.bytes_done !== undefined) {
    parts.push(p.bytes_total != null ? `${formatBytes(p.bytes_done)} of ${formatBytes(p.bytes_total)}` : `${formatBytes(p.bytes_done)} of size not known yet`);
  }
  if (p.pieces_done !== undefined && p.pieces_total != null) parts.push(`${p.pieces_done}/${p.pieces_total} pieces`);
  if (p.rate_bps) parts.push(`${formatBytes(p.rate_bps)}/s`);
  if (p.hosts_fetching) parts.push(`${p.hosts_fetching} host${p.hosts_fetching === 1 ? "" : "s"} fetching`);
  parts.push(`${p.succeeded + p.failed}/${p.total} tasks${p.failed ? ` (${p.failed} failed)` : ""}`);
  return parts.join(" · ");
}

/** Log lines not shown yet. The log keeps its last lines only, so the last one shown is looked up, not counted. */
export class LogCursor {
  private last: string | undefined;

  next(job: JobView): string[] {
    const log = job.result?.log ?? [];
    const at = this.last === undefined ? -1 : log.lastIndexOf(this.last);
    const fresh = log.slice(at + 1);
    if (fresh.length) this.last = fresh[fresh.length - 1];
    return fresh;
  }
}
