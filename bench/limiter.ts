/**
 * A rate limiter shared by every connection of the bench origin: one virtual
 * clock, so the origin's TOTAL bandwidth is capped, whatever the number of
 * connections. Callers are served in the order they ask (FIFO), so concurrent
 * downloads share the bandwidth fairly. There is no burst allowance beyond the
 * chunk being sent (an idle origin does not bank tokens), which keeps short runs
 * honest: src/peer/throttle.ts's TokenBucket starts with one second's worth of
 * tokens, which would let a 10 s transfer run ~10% faster than the stated rate.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";

export class SharedRateLimiter {
  /** performance.now() at which the next chunk may start. */
  private next = 0;

  /** `bytesPerSec` <= 0 means unlimited. */
  constructor(private readonly bytesPerSec: number) {}

  get unlimited(): boolean {
    return this.bytesPerSec <= 0;
  }

  /** Resolves when `n` bytes may be sent. */
  async take(n: number): Promise<void> {
    if (this.unlimited) return;
    const now = performance.now();
    const start = Math.max(this.next, now);
    this.next = start + (n / this.bytesPerSec) * 1000;
    const wait = start - now;
    if (wait >= 1) await sleep(wait);
  }
}
