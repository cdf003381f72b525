/** The Redis connection manager replicas share state through (job queue, rate limits, sign-in failures). */
import { Redis } from "ioredis";
import { KilnError, describeNetworkError } from "../../common/errors.js";

export interface RedisTarget {
  url: string;
  /** Namespaces every key kiln writes, so several kiln installations (or test runs) can share one Redis. */
  prefix: string;
}

/** A Redis URL fit for logs and errors: the password masked (redis://:password@host is common). */
export function showRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<invalid Redis URL>";
  }
}

/**
 * Connects and checks the server answers, so that a wrong --redis-url stops the
 * manager at start with one line instead of failing its first request.
 * `blocking`: for BullMQ workers, whose commands must wait through a reconnect.
 */
export async function connectRedis(url: string, opts: { blocking?: boolean; onError?: (err: Error) => void } = {}): Promise<Redis> {
  if (!/^rediss?:\/\//i.test(url)) {
    throw new KilnError("BAD_REQUEST", `unsupported Redis URL ${showRedisUrl(url)}: use redis://[user:password@]host:6379[/db] or rediss://…`);
  }
  // Requests that need Redis fail after a few retries while it is away rather than hang.
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 5_000, maxRetriesPerRequest: opts.blocking ? null : 3 });
  let lastError: unknown;
  const remember = (err: Error) => (lastError = err);
  redis.on("error", remember);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new KilnError("UNAVAILABLE", `cannot reach Redis at ${showRedisUrl(url)}: ${describeNetworkError(lastError ?? err)}`);
  }
  // Later errors (Redis restarting) are reported, and ioredis reconnects by itself.
  redis.off("error", remember);
  redis.on("error", opts.onError ?? (() => undefined));
  return redis;
}

/** Deletes every key under `prefix` (tests, and an operator clearing a retired installation). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== "0");
  return deleted;
}
