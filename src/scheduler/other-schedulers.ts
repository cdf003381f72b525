/**
 * The other schedulers of this scheduler's cluster (from the manager's keepalive
 * replies), asked before this one takes a task that is new to it: a task some other
 * scheduler already has (it was there before this one joined or came back) stays
 * there, and the peer is sent on to it. So a joining scheduler takes only new tasks,
 * and no task is fetched from the origin twice because its peers were split.
 */
import { SchedulerClient } from "../api/scheduler-client.js";
import { SCHEDULER } from "../common/defaults.js";
import type { Logger } from "../common/logger.js";

/** A scheduler whose process is gone (connection refused) is not asked again for this long. */
const GONE_SKIP_MS = 10_000;

export class OtherSchedulers {
  private clients: SchedulerClient[] = [];
  /** Until when each gone scheduler is skipped: a dead one that is still listed costs one refused connection, not one per task. */
  private readonly goneUntil = new Map<string, number>();
  /** One question per task at a time: registrations racing for a new task share it. */
  private readonly asking = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly log: Logger,
    private readonly clusterSecret: string | undefined,
    private readonly timeoutMs: number = SCHEDULER.ownerLookupMs,
  ) {}

  /** The manager's current list (API URLs, this scheduler's own left out). */
  set(urls: readonly string[]): void {
    const next = [...new Set(urls)].sort();
    const now = this.clients.map((c) => c.baseUrl);
    if (next.join("\n") === now.join("\n")) return;
    this.clients = next.map((u) => this.clients.find((c) => c.baseUrl === u) ?? new SchedulerClient(u, this.clusterSecret));
    this.log.info({ event: "other-schedulers", schedulers: next }, "the cluster's other schedulers changed");
  }

  get size(): number {
    return this.clients.length;
  }

  /**
   * The scheduler that has `taskId` with a peer on it, if one of the others does
   * (whichever answers yes first). A scheduler that does not answer within the
   * lookup time counts as not having it: a dead one must not hold up new tasks.
   */
  ownerOf(taskId: string): Promise<string | undefined> {
    let pending = this.asking.get(taskId);
    if (!pending) {
      pending = this.ask(taskId).finally(() => this.asking.delete(taskId));
      this.asking.set(taskId, pending);
    }
    return pending;
  }

  private ask(taskId: string): Promise<string | undefined> {
    const now = Date.now();
    const clients = this.clients.filter((c) => (this.goneUntil.get(c.baseUrl) ?? 0) <= now);
    if (clients.length === 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let left = clients.length;
      for (const c of clients) {
        c.knowsTask(taskId, this.timeoutMs).then(
          (r) => {
            if (r.known) resolve(c.baseUrl);
            if (--left === 0) resolve(undefined);
          },
          (err: Error) => {
            if (/ECONNREFUSED|EHOSTUNREACH|ENOTFOUND/.test(err.message)) this.goneUntil.set(c.baseUrl, Date.now() + GONE_SKIP_MS);
            if (--left === 0) resolve(undefined);
          },
        );
      }
    });
  }
}
