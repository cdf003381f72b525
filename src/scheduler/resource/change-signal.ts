/** A version that moves on every change of a task, and the long polls waiting for it to move. */
export class ChangeSignal {
  private current = 0;
  /** One callback per waiting poll; a set, so a poll that times out leaves in O(1). */
  private readonly waiters = new Set<() => void>();

  get version(): number {
    return this.current;
  }

  /** Moves the version without waking anyone: stamps a change that notify() publishes. */
  advance(): number {
    return ++this.current;
  }

  /** Moves the version and wakes every waiting poll. */
  notify(): void {
    this.current++;
    if (this.waiters.size === 0) return;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /** Resolves when the version moves past `since`, or after `ms`. */
  waitPast(since: number, ms: number): Promise<void> {
    if (this.current > since || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}
