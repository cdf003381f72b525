/**
 * Redis for tests: the one at KILN_TEST_REDIS_URL (default redis://127.0.0.1:6379),
 * with a key prefix of its own per test run, whose keys are deleted afterwards.
 * Under CI=true a Redis that cannot be reached fails the test; elsewhere it is skipped.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { deleteKeys } from "../../src/manager/shared/redis.js";

export interface TestRedis {
  url: string;
  prefix: string;
  client: Redis;
  /** Deletes every key under the prefix and disconnects. */
  cleanup(): Promise<void>;
}

const URL_ = process.env.KILN_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export async function createTestRedis(): Promise<TestRedis | { skip: string }> {
  const client = new Redis(URL_, { lazyConnect: true, connectTimeout: 5_000, maxRetriesPerRequest: 1 });
  let lastError: Error | undefined;
  client.on("error", (err: Error) => (lastError = err));
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    const msg = `Redis is not reachable at ${URL_} (${(lastError ?? (err as Error)).message}); set KILN_TEST_REDIS_URL`;
    if (process.env.CI === "true") throw new Error(`CI: ${msg}`);
    return { skip: msg };
  }
  const prefix = `kiln-test-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  return {
    url: URL_,
    prefix,
    client,
    async cleanup() {
      await deleteKeys(client, prefix);
      client.disconnect();
    },
  };
}
