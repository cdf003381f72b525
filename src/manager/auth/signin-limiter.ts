/**
 * Failed sign-ins per (user name, client address): after too many within the
 * window, that pair gets 429 without its password being checked, so guessing
 * stops there. Keyed by the pair so that an attacker cannot lock the real user
 * out from elsewhere. `SignInLimiter` counts in memory (one manager);
 * `RedisSignInLimiter` counts for every replica sharing a Redis.
 */
export interface SignInLimits {
  maxFailures: number;
  windowMs: number;
}

export interface SignInGuard {
  /** Seconds until this pair may try again; 0 when it may now. */
  retryAfterSeconds(name: string, address: string): number | Promise<number>;
  failed(name: string, address: string): void | Promise<void>;
  succeeded(name: string, address: string): void | Promise<void>;
}

export class SignInLimiter implements SignInGuard {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: SignInLimits) {}

  private key(name: string, address: string): string {
    return `${address}\n${name}`;
  }

  private recent(key: string, now: number): number[] {
    const since = now - this.limits.windowMs;
    const times = (this.failures.get(key) ?? []).filter((t) => t > since);
    if (times.length) this.failures.set(key, times);
    else this.failures.delete(key);
    return times;
  }

  retryAfterSeconds(name: string, address: string, now = Date.now()): number {
    const times = this.recent(this.key(name, address), now);
    if (times.length < this.limits.maxFailures) return 0;
    return Math.ceil((times[times.length - this.limits.maxFailures]! + this.limits.windowMs - now) / 1000);
  }

  failed(name: string, address: string, now = Date.now()): void {
    const key = this.key(name, address);
    this.failures.set(key, [...this.recent(key, now), now]);
  }

  succeeded(name: string, address: string): void {
    this.failures.delete(this.key(name, address));
  }
}
