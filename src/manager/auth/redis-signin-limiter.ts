/**
 * Failed sign-ins counted in Redis, so that the limit holds across manager
 * replicas (a guesser behind a load balancer meets the same count everywhere).
 * One sorted set of failure times per (address, name), on Redis's clock; each
 * step is one Lua script, atomic across replicas.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { SignInGuard, SignInLimits } from "./signin-limiter.js";

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// ARGV: maxFailures, windowMs. Returns the seconds to wait (0: may try now).
const RETRY_AFTER = `${NOW}
local max, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < max then return 0 end
local oldest = redis.call('ZRANGE', KEYS[1], n - max, n - max, 'WITHSCORES')
return math.ceil((tonumber(oldest[2]) + window - now) / 1000)
`;

// ARGV: windowMs, a unique member.
const FAILED = `${NOW}
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], window)
return 0
`;

export class RedisSignInLimiter implements SignInGuard {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: SignInLimits,
  ) {}

  // Hashed: user names and addresses stay out of the key space (and any key listing).
  private key(name: string, address: string): string {
    return `${this.prefix}:signin-failures:${createHash("sha256").update(`${address}\n${name}`).digest("hex")}`;
  }

  async retryAfterSeconds(name: string, address: string): Promise<number> {
    return Number(await this.redis.eval(RETRY_AFTER, 1, this.key(name, address), String(this.limits.maxFailures), String(this.limits.windowMs)));
  }

  async failed(name: string, address: string): Promise<void> {
    await this.redis.eval(FAILED, 1, this.key(name, address), String(this.limits.windowMs), randomUUID());
  }

  async succeeded(name: string, address: string): Promise<void> {
    await this.redis.del(this.key(name, address));
  }
}
