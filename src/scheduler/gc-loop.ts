/**
 * The scheduler's garbage-collection loop. When this process itself was stalled (CPU
 * starvation, a long GC pause), the hosts' keepalives of that time may still be unread
 * in its sockets, and timers run before pending I/O: judging hosts then would drop
 * live ones (and send their children to the origin). A round that comes much later
 * than due is skipped, so the next one sees the announces first.
 */
import type { Logger } from "../common/logger.js";

/** A round this late (in intervals) means the process was stalled. */
const STALL_FACTOR = 3;

/** Whether a round due every `intervalMs`, last run at `lastRunAt`, may judge hosts `now`. */
export function mayCollect(lastRunAt: number, now: number, intervalMs: number): boolean {
  return now - lastRunAt <= STALL_FACTOR * intervalMs;
}

/** Runs `collect` every `intervalMs`, skipping the first round after a stall; returns the stop function. */
export function startGarbageCollection(collect: (now: number) => void, intervalMs: number, log: Logger): () => void {
  let lastRunAt = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const ok = mayCollect(lastRunAt, now, intervalMs);
    if (!ok) log.warn({ stalledMs: now - lastRunAt - intervalMs }, "scheduler was stalled; host expiry waits one round for keepalives already sent");
    lastRunAt = now;
    if (ok) collect(now);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
