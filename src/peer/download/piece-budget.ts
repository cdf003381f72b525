/**
 * The piece fetches in flight on this peer, across all its downloads. Each download may
 * have `concurrentPieces` of its own in flight; a client pulling an image asks for several
 * blobs at once (skopeo six, containerd three), and six downloads with eight 4 MiB pieces
 * each share one link: every piece then takes six times as long to land, and a blob's first
 * verified byte (what its reader waits for) came 0.8–0.9 s after its request. With one
 * budget for the host, fewer pieces are in flight, each lands sooner, and the link is as
 * full. A download that finds the budget spent waits in line and is called when a slot
 * frees, in the order they came.
 */
export class PieceBudget {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limit: number) {}

  /** Slots free now. */
  get free(): number {
    return Math.max(0, this.limit - this.used);
  }

  /** Takes `n` slots (the caller checked `free`). */
  take(n: number): void {
    this.used += n;
  }

  /** Gives one slot back and calls the download that has waited longest. */
  release(): void {
    this.used--;
    const next = this.waiting.values().next();
    if (next.done) return;
    this.waiting.delete(next.value);
    next.value();
  }

  /** Calls `retry` once when a slot frees (once however often it is asked before). */
  waitForSlot(retry: () => void): void {
    this.waiting.add(retry);
  }

  /** The download ended: it no longer waits. */
  forget(retry: () => void): void {
    this.waiting.delete(retry);
  }
}
