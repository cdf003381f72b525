/** Per-cluster token buckets: `rate` jobs per second, bursts up to `rate`. */
export class RateLimiter {
  private readonly buckets = new Map<number, { tokens: number; at: number; rate: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Seconds until a job fits for every cluster, or 0 (and the jobs are counted) when it fits now. */
  take(limits: { clusterId: number; rate: number }[]): number {
    const t = this.now();
    let wait = 0;
    const buckets = limits.map(({ clusterId, rate }) => {
      let b = this.buckets.get(clusterId);
      if (!b || b.rate !== rate) b = { tokens: rate, at: t, rate };
      b.tokens = Math.min(rate, b.tokens + ((t - b.at) / 1000) * rate);
      b.at = t;
      this.buckets.set(clusterId, b);
      if (b.tokens < 1) wait = Math.max(wait, (1 - b.tokens) / rate);
      return b;
    });
    if (wait > 0) return wait;
    for (const b of buckets) b.tokens -= 1;
    return 0;
  }
}
