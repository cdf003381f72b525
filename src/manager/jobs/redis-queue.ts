/**
 * The job queue shared by manager replicas: BullMQ on Redis. BullMQ job ID = kiln
 * job ID, so enqueueing a job that is already waiting or running anywhere is a
 * no-op (each replica's start-up `recover()` may enqueue every pending job).
 * A job is locked by the replica running it; when that replica dies, the lock
 * expires and another replica's stalled-job check puts the job back to wait,
 * where any replica picks it up and the runner resumes it (it is idempotent on
 * a PENDING row). `cancel` reaches the replica running the job through a
 * pub/sub channel.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Queue, WaitingError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Logger } from "../../common/logger.js";
import type { JobHandler, JobQueue } from "./queue.js";

export interface RedisQueueOptions {
  /** Commands (enqueue, cancel): fails fast while Redis is away. */
  redis: Redis;
  /** For the BullMQ worker, whose blocking commands wait through reconnects. */
  workerRedis: Redis;
  prefix: string;
  concurrency: number;
  /** How long a replica's claim on a running job lasts without renewal: a dead replica's jobs move on after about this long. */
  lockMs: number;
  log: Logger;
}

const QUEUE_NAME = "preheat";
const SHUTDOWN = "shutdown";
/** At shutdown, how long the worker's graceful close may take. */
const CLOSE_WAIT_MS = 10_000;
/** At shutdown, how long a worker connection waiting to reconnect gets to come back before the close is forced. */
const RECONNECT_WAIT_MS = 5_000;
const CancelMessage = z.object({ jobId: z.number().int().positive(), reason: z.string().max(200) });
type JobData = { jobId: number };

// BullMQ refuses custom IDs that are integers.
const bullId = (jobId: number) => `job-${jobId}`;
const kilnId = (id: string) => Number(id.replace(/^job-/, ""));

export class RedisJobQueue implements JobQueue {
  private readonly queue: Queue<JobData>;
  private readonly worker: Worker<JobData>;
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly running = new Set<number>();
  /** The clients BullMQ makes from `workerRedis` (the worker's blocking connection). */
  private readonly workerClients: Redis[];
  private closing = false;

  private constructor(
    private readonly handler: JobHandler,
    private readonly onError: (jobId: number, err: unknown) => void,
    private readonly opts: RedisQueueOptions,
  ) {
    this.channel = `${opts.prefix}:job-cancel`;
    this.workerClients = trackDuplicates(opts.workerRedis);
    this.queue = new Queue<JobData>(QUEUE_NAME, {
      connection: opts.redis,
      prefix: opts.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 1 },
    });
    this.worker = new Worker<JobData>(QUEUE_NAME, (job, token, signal) => this.process(job, token, signal), {
      connection: opts.workerRedis,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      lockDuration: opts.lockMs,
      stalledInterval: opts.lockMs,
      // A job may outlive several replicas; its own deadline (not a stall count) ends it.
      maxStalledCount: 1_000,
      autorun: false,
    });
    this.worker.on("error", (err) => opts.log.warn({ err: err.message }, "job queue (Redis) error"));
    this.worker.on("stalled", (id) =>
      opts.log.info({ job: kilnId(id), event: "job_stalled" }, "a job whose manager stopped renewing its claim goes back to the queue"),
    );
    // Another replica may have taken the job over: stop running it here.
    this.worker.on("lockRenewalFailed", (ids) => {
      for (const id of ids) this.worker.cancelJob(id, "this manager lost the job's lock");
    });
    this.subscriber = opts.redis.duplicate();
    this.subscriber.on("error", () => undefined); // reconnects by itself; the command connection reports errors
    this.subscriber.on("message", (channel, message) => {
      if (channel !== this.channel) return;
      const parsed = CancelMessage.safeParse(safeJson(message));
      if (parsed.success) this.worker.cancelJob(bullId(parsed.data.jobId), parsed.data.reason);
    });
  }

  static async start(handler: JobHandler, onError: (jobId: number, err: unknown) => void, opts: RedisQueueOptions): Promise<RedisJobQueue> {
    const q = new RedisJobQueue(handler, onError, opts);
    try {
      await q.subscriber.subscribe(q.channel);
      await q.queue.waitUntilReady();
      void q.worker.run().catch((err: Error) => opts.log.error({ err: err.message }, "job queue worker stopped"));
      await q.worker.waitUntilReady();
    } catch (err) {
      await q.close().catch(() => undefined);
      throw err;
    }
    return q;
  }

  /** Jobs running on this manager. */
  get size(): number {
    return this.running.size;
  }

  async enqueue(jobId: number): Promise<void> {
    await this.queue.add("preheat", { jobId }, { jobId: bullId(jobId) });
  }

  async cancel(jobId: number, reason: string): Promise<void> {
    await this.queue.remove(bullId(jobId)).catch(() => 0); // waiting: gone; running (locked): stopped below
    await this.opts.redis.publish(this.channel, JSON.stringify({ jobId, reason }));
  }

  private async process(job: Job<JobData>, token: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const jobId = job.data.jobId;
    if (this.closing) return this.handBack(job, token); // fetched while this manager shuts down
    const stop = signal ?? new AbortController().signal;
    this.running.add(jobId);
    try {
      await this.handler(jobId, stop);
    } catch (err) {
      this.onError(jobId, err);
    } finally {
      this.running.delete(jobId);
    }
    if (stop.aborted) this.opts.log.info({ job: jobId, event: "job_stopped", reason: String(stop.reason) }, "job stopped on this manager");
    if (stop.aborted && stop.reason === SHUTDOWN) return this.handBack(job, token);
  }

  /** Back to wait at once: another replica resumes the job without waiting for this one's lock to expire. */
  private async handBack(job: Job<JobData>, token: string | undefined): Promise<never> {
    await job.moveToWait(token);
    throw new WaitingError();
  }

  async close(): Promise<void> {
    this.closing = true;
    this.worker.cancelAllJobs(SHUTDOWN);
    // BullMQ's graceful close (which lets stopped jobs hand themselves back) waits for its blocking
    // connection's 'end' event, and ioredis never sends it for a connection waiting to reconnect
    // (Redis restarted or away): the close would hang for good. Such a connection gets a moment to
    // come back; if it does not, Redis is away, no job can be handed back, and the close is forced
    // (the jobs return through the stalled check when their locks expire).
    const connected = await this.workerConnected(RECONNECT_WAIT_MS);
    const closed = await Promise.race([this.worker.close(!connected).then(() => true), sleep(CLOSE_WAIT_MS, false)]);
    // Still closing (Redis went away during the close): cut the connections without waiting.
    if (!closed) for (const client of this.workerClients) client.disconnect();
    await this.queue.close();
    this.subscriber.disconnect();
  }

  /** Whether the worker's own connections are up, waiting up to `ms` for those reconnecting (failed attempts included). */
  private async workerConnected(ms: number): Promise<boolean> {
    const down = this.workerClients.filter((c) => c.status !== "ready");
    const ready = (client: Redis) => new Promise<void>((resolve) => client.once("ready", resolve));
    return Promise.race([Promise.all(down.map(ready)).then(() => true), sleep(ms, false, { ref: false })]);
  }
}

/** Records every client duplicated from `redis` (BullMQ makes its worker's blocking connection so). */
function trackDuplicates(redis: Redis): Redis[] {
  const made: Redis[] = [];
  const duplicate = redis.duplicate.bind(redis);
  redis.duplicate = ((...args: Parameters<Redis["duplicate"]>) => {
    const client = duplicate(...args);
    made.push(client);
    return client;
  }) as Redis["duplicate"];
  return made;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
