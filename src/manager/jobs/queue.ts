/**
 * Job queue interface and the embedded in-process implementation. `RedisJobQueue`
 * (redis-queue.ts, BullMQ) implements the same interface for several manager replicas.
 */
export type JobHandler = (jobId: number, signal: AbortSignal) => Promise<void>;

export interface JobQueue {
  /** Runs the job once a slot is free; a job already queued or running (on any replica) is not added twice. */
  enqueue(jobId: number): Promise<void>;
  /** Stops a queued or running job, wherever it runs (its handler sees the signal aborted with `reason`). */
  cancel(jobId: number, reason: string): Promise<void>;
  /** Number of jobs queued or running on this manager. */
  readonly size: number;
  /** Stops everything; running handlers are aborted with reason "shutdown" and awaited. */
  close(): Promise<void>;
}

export class InProcessQueue implements JobQueue {
  private readonly waiting: number[] = [];
  private readonly running = new Map<number, { controller: AbortController; done: Promise<void> }>();
  private closed = false;

  constructor(
    private readonly handler: JobHandler,
    private readonly concurrency: number,
    private readonly onError: (jobId: number, err: unknown) => void,
  ) {}

  get size(): number {
    return this.waiting.length + this.running.size;
  }

  async enqueue(jobId: number): Promise<void> {
    if (this.closed || this.running.has(jobId) || this.waiting.includes(jobId)) return;
    this.waiting.push(jobId);
    this.pump();
  }

  async cancel(jobId: number, reason: string): Promise<void> {
    const i = this.waiting.indexOf(jobId);
    if (i >= 0) this.waiting.splice(i, 1);
    this.running.get(jobId)?.controller.abort(reason);
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.waiting.length) {
      const jobId = this.waiting.shift()!;
      const controller = new AbortController();
      const done = Promise.resolve()
        .then(() => this.handler(jobId, controller.signal))
        .catch((err) => this.onError(jobId, err))
        .finally(() => {
          this.running.delete(jobId);
          this.pump();
        });
      this.running.set(jobId, { controller, done });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    const all = [...this.running.values()];
    for (const r of all) r.controller.abort("shutdown");
    await Promise.all(all.map((r) => r.done));
  }
}
