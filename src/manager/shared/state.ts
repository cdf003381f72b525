/**
 * What manager replicas must share, chosen once at start: with a Redis URL the
 * job queue, the job rate limit and the sign-in limiter live in Redis (every
 * replica sees the same); without one, in this process (the embedded default).
 */
import type { Logger } from "../../common/logger.js";
import { MANAGER } from "../defaults.js";
import { InProcessQueue, type JobHandler, type JobQueue } from "../jobs/queue.js";
import { RedisJobQueue } from "../jobs/redis-queue.js";
import { RateLimiter, type JobRateLimit } from "../jobs/rate-limit.js";
import { RedisRateLimiter } from "../jobs/redis-rate-limit.js";
import { SignInLimiter, type SignInGuard } from "../auth/signin-limiter.js";
import { RedisSignInLimiter } from "../auth/redis-signin-limiter.js";
import { connectRedis, showRedisUrl, type RedisTarget } from "./redis.js";

export interface SharedState {
  queue: JobQueue;
  rateLimit: JobRateLimit;
  signIn: SignInGuard;
  /** "redis" or "in-process", for the ready line. */
  kind: "redis" | "in-process";
  /** With Redis: resolves when it answered a PING (readiness). */
  ping?: () => Promise<unknown>;
  close(): Promise<void>;
}

export interface SharedStateOptions {
  redis?: RedisTarget;
  concurrency: number;
  lockMs: number;
  run: JobHandler;
  log: Logger;
}

const signInLimits = { maxFailures: MANAGER.signInMaxFailures, windowMs: MANAGER.signInWindowMs };

export async function openSharedState(opts: SharedStateOptions): Promise<SharedState> {
  const onJobError = (id: number, err: unknown) => opts.log.error({ job: id, err }, "job runner crashed");
  if (!opts.redis) {
    const queue = new InProcessQueue(opts.run, opts.concurrency, onJobError);
    return { queue, rateLimit: new RateLimiter(), signIn: new SignInLimiter(signInLimits), kind: "in-process", close: () => queue.close() };
  }
  const { url, prefix } = opts.redis;
  let warned = false;
  const onError = (err: Error) => {
    if (!warned) opts.log.warn({ redis: showRedisUrl(url), err: err.message }, "Redis connection lost; reconnecting");
    warned = true;
  };
  const redis = await connectRedis(url, { onError });
  redis.on("ready", () => (warned = false));
  const workerRedis = await connectRedis(url, { blocking: true, onError }).catch((err) => {
    redis.disconnect();
    throw err;
  });
  try {
    const { concurrency, lockMs, log } = opts;
    const queue = await RedisJobQueue.start(opts.run, onJobError, { redis, workerRedis, prefix, concurrency, lockMs, log });
    return {
      queue,
      rateLimit: new RedisRateLimiter(redis, prefix),
      signIn: new RedisSignInLimiter(redis, prefix, signInLimits),
      kind: "redis",
      ping: () => redis.ping(),
      async close() {
        await queue.close();
        // disconnect, not quit: a connection still reconnecting to a Redis that went away would
        // retry for good and keep the process alive.
        workerRedis.disconnect();
        redis.disconnect();
      },
    };
  } catch (err) {
    workerRedis.disconnect();
    redis.disconnect();
    throw err;
  }
}
