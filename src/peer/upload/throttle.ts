/** A token bucket shared by all uploads: caps the peer's upload bandwidth. */
import { setTimeout as sleep } from "node:timers/promises";

export class TokenBucket {
  private tokens: number;
  private last = Date.now();

  /** `rate` bytes per second; 0 means unlimited. Bursts up to one second's worth. */
  constructor(private readonly rate: number) {
    this.tokens = rate;
  }

  get unlimited(): boolean {
    return this.rate <= 0;
  }

  async take(n: number): Promise<void> {
    if (this.unlimited) return;
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= Math.min(n, this.rate)) {
        this.tokens -= n;
        return;
      }
      await sleep(Math.max(5, ((Math.min(n, this.rate) - this.tokens) / this.rate) * 1000));
    }
  }
}
