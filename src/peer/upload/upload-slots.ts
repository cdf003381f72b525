/**
 * The upload port's slots: `concurrency` uploads at a time, and up to `queue` more
 * requests waiting for the next free slot in arrival order. A waiting request costs the
 * child nothing but the wait (on a fast link a slot frees within milliseconds), where a
 * "busy" answer costs it a round trip and a back-off, and costs both sides the CPU of a
 * request that moves no byte; only beyond the queue is a child told to go elsewhere.
 */
import type { ServerResponse } from "node:http";

export type SlotAnswer = "granted" | "full" | "gone";

export class UploadSlots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
  ) {}

  get free(): number {
    return Math.max(0, this.concurrency - this.active);
  }

  /** A slot for the answer `res`: at once, after waiting in line, "full" when the line is full too, "gone" if the client left while waiting. */
  acquire(res: ServerResponse): Promise<SlotAnswer> {
    if (this.active < this.concurrency) {
      this.active++;
      return Promise.resolve("granted");
    }
    if (this.waiting.length >= this.queue) return Promise.resolve("full");
    return new Promise((resolve) => {
      const grant = () => {
        res.off("close", left);
        resolve("granted");
      };
      const left = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve("gone");
      };
      this.waiting.push(grant);
      res.once("close", left);
    });
  }

  /** The slot passes straight to the first in line, so no newcomer slips in between. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
