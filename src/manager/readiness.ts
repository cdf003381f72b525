/**
 * Readiness: whether this manager can serve requests, which needs its database and,
 * in multi-manager mode, Redis. Liveness (/healthy) is only that the process answers:
 * restarting it would not bring a database back, but a load balancer must stop sending
 * it sign-ins that can only fail.
 */
import { describeNetworkError } from "../common/errors.js";
import type { ReadinessReply } from "../api/manager-paths.js";

export interface Dependency {
  /** Its key in ReadinessReply.checks. */
  key: keyof ReadinessReply["checks"];
  /** How a sentence names it: "the database (postgres)", "Redis at redis://…". */
  what: string;
  /** Resolves when it answered a trivial request. */
  ping(): Promise<unknown>;
}

export class Readiness {
  /** A ping still out: the next probe waits for it instead of sending another (a dead database must not pile up queries). */
  private readonly inflight = new Map<Dependency, Promise<string>>();

  constructor(
    private readonly deps: Dependency[],
    private readonly timeoutMs: number,
  ) {}

  private ping(dep: Dependency): Promise<string> {
    let p = this.inflight.get(dep);
    if (!p) {
      p = dep
        .ping()
        .then(
          () => "ok",
          (err: unknown) => `${dep.what} failed: ${describeNetworkError(err)}`,
        )
        .finally(() => this.inflight.delete(dep));
      this.inflight.set(dep, p);
    }
    return p;
  }

  private async check(dep: Dependency): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`${dep.what} did not answer within ${this.timeoutMs} ms`), this.timeoutMs);
    });
    try {
      return await Promise.race([this.ping(dep), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async report(): Promise<ReadinessReply> {
    const results = await Promise.all(this.deps.map(async (d) => [d.key, await this.check(d)] as const));
    const checks = Object.fromEntries(results) as ReadinessReply["checks"];
    const failed = results.filter(([, r]) => r !== "ok").map(([, r]) => r);
    return failed.length ? { ready: false, checks, message: `not ready: ${failed.join("; ")}` } : { ready: true, checks };
  }
}
