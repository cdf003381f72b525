/**
 * The job rate limit shared by every manager replica: the same token bucket per
 * cluster as the in-memory one, kept in Redis and updated by one Lua script, so
 * that checking every selected cluster and taking a token from each is atomic
 * across replicas. Time is Redis's own clock, not the replicas' (they may skew).
 */
import type { Redis } from "ioredis";
import type { ClusterRate, JobRateLimit } from "./rate-limit.js";

// KEYS: one hash per cluster; ARGV: their rates. Returns 0 (a token taken from every bucket) or the milliseconds to wait.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local tokens = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i])
  local b = redis.call('HMGET', key, 'tokens', 'at', 'rate')
  local tk, at = tonumber(b[1]), tonumber(b[2])
  if tk == nil or at == nil or tonumber(b[3]) ~= rate then tk = rate; at = now end
  tk = math.min(rate, tk + (now - at) / 1000 * rate)
  tokens[i] = tk
  if tk < 1 then wait = math.max(wait, math.ceil((1 - tk) / rate * 1000)) end
end
for i, key in ipairs(KEYS) do
  local tk = tokens[i]
  if wait == 0 then tk = tk - 1 end
  redis.call('HSET', key, 'tokens', tostring(tk), 'at', tostring(now), 'rate', ARGV[i])
  redis.call('PEXPIRE', key, 60000)
end
return wait
`;

export class RedisRateLimiter implements JobRateLimit {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async take(limits: ClusterRate[]): Promise<number> {
    if (limits.length === 0) return 0;
    const keys = limits.map((l) => `${this.prefix}:job-rate:cluster:${l.clusterId}`);
    const waitMs = Number(await this.redis.eval(TAKE, keys.length, ...keys, ...limits.map((l) => String(l.rate))));
    return waitMs / 1000;
  }
}
