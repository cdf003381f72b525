/** The job rate limit per cluster: `rate` jobs per second, bursts up to `rate` (a token bucket per cluster). */
export interface ClusterRate {
  clusterId: number;
  rate: number;
}

export interface JobRateLimit {
  /** Seconds until a job fits for every cluster, or 0 (and the job is counted in each) when it fits now. */
  take(limits: ClusterRate[]): number | Promise<number>;
}

/** In memory: one manager's own count (the embedded default). */
export class RateLimiter implements JobRateLimit {
  private readonly buckets = new Map<number, { tokens: number; at: number; rate: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  take(limits: ClusterRate[]): number {
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
