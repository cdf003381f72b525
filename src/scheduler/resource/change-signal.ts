/**
 * A version that moves on every change of a task that every waiting peer must hear
 * of (a digest, the layout, the task's state, its origin fetcher), and the long polls
 * waiting for it to move. A new candidate parent (a peer that joined or finished) wakes
 * only the polls that asked for parents, without moving the version: a peer with
 * all the parents it wants is not answered once per peer that joins or finishes, which
 * made each peer's polls, and the scheduler's work, grow with the swarm.
 */
export class ChangeSignal {
  private current = 0;
  /** One callback per waiting poll, with whether it asked for parents; a map, so a poll that times out leaves in O(1). */
  private readonly waiters = new Map<() => void, boolean>();

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
    this.wake(() => true);
  }

  /** A peer others may fetch from appeared: wakes the polls that want parents. */
  notifyHolders(): void {
    this.wake((wantsParents) => wantsParents);
  }

  /** Resolves when the version moves past `since`, or (`wantsParents`) a new holder appears, or after `ms`. */
  waitPast(since: number, ms: number, wantsParents = false): Promise<void> {
    if (this.current > since || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.set(done, wantsParents);
    });
  }

  private wake(which: (wantsParents: boolean) => boolean): void {
    if (this.waiters.size === 0) return;
    const waking = [...this.waiters].filter(([, wantsParents]) => which(wantsParents));
    for (const [done] of waking) done();
  }
}
