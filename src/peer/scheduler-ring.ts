/**
 * The schedulers of this peer's cluster, and which one each task goes to.
 *
 * A task's scheduler is the first live one in the rendezvous ranking of its task ID
 * over the cluster's scheduler URLs (common/rendezvous.ts), the same ranking the
 * manager's preheat dispatch and every other peer use. Once a task is registered
 * with a scheduler it stays there while that scheduler lives (a scheduler that
 * joins takes only new tasks; a registration it answers with another `owner`, one
 * that had the task before it joined, is followed). A scheduler that stops answering
 * (announce or call refused, timed out) is marked down: the tasks this peer had
 * registered there are registered again, with the pieces they hold, with the next
 * live scheduler of their ranking (`onMoved`, the engine's resume path), and calls
 * for them wait for that. The host announces itself to every scheduler of the list.
 *
 * The list comes from `--scheduler` (one URL or several) or from the manager, asked
 * again every `refreshMs`; when the manager does not answer the list in hand is kept,
 * so a manager outage never stops downloads.
 */
import { SchedulerClient } from "../api/scheduler-client.js";
import type { HostAnnounceInput, HostAnnounceReply, PieceReport, FailureReport, PeerResult, RegisterPeerInput } from "../api/scheduler.js";
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { rendezvousRank } from "../common/rendezvous.js";
import { taskIdFor } from "../common/task-id.js";
import type { EngineScheduler } from "./download/scheduler-port.js";

interface Member {
  url: string;
  client: SchedulerClient;
  /** Answered its last announce or call; a member that did not is skipped by the ranking until it announces again. */
  up: boolean;
  /** Calls in a row that got no answer in time (a busy scheduler is not a dead one: see `noAnswer`). */
  silent: number;
}

/** Timeouts in a row after which a scheduler that still accepts connections counts as down. */
const SILENT_STRIKES = 2;

export interface SchedulerRingOptions {
  /** The cluster's scheduler API URLs as known at start. */
  urls: readonly string[];
  clusterSecret?: string;
  log: Logger;
  /** The cluster's schedulers now (the manager); a failure or an empty answer keeps the list in hand. */
  list?: () => Promise<string[]>;
  refreshMs?: number;
}

/** A registration answered `owner` more often than this is refused (a loop between schedulers that disagree). */
const MAX_REDIRECTS = 2;

/** The scheduler did not answer at all (refused, reset, timed out): unlike its own error replies, a reason to try the next one. */
export function isUnreachable(err: unknown): boolean {
  return err instanceof KilnError && err.code === "UNAVAILABLE" && / unreachable: /.test(err.message);
}

/** A scheduler's answer that it does not have this download's peer or task. */
function isForgotten(err: unknown): boolean {
  return err instanceof KilnError && err.code === "NOT_FOUND" && /^unknown (peer|task) /.test(err.message);
}

/** Nothing listens there any more (the process is gone), as opposed to an answer that was slow. */
function isGone(err: unknown): boolean {
  return isUnreachable(err) && /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up/.test((err as Error).message);
}

export class SchedulerRing implements EngineScheduler {
  private readonly members = new Map<string, Member>();
  /** Task ID → the scheduler this peer registered it with. */
  private readonly pins = new Map<string, string>();
  /** Tasks being registered again elsewhere: their calls wait for it. */
  private readonly moving = new Map<string, Promise<void>>();
  /**
   * Task ID → the scheduler whose task versions the download last heard (its
   * registration or schedule reply). A schedule call's `since` is one of its versions:
   * sent to another scheduler, whose versions count from elsewhere, it would skip
   * digests, so it asks for all of them (`since` -1) instead.
   */
  private readonly versionsFrom = new Map<string, string>();
  private refreshTimer: NodeJS.Timeout | undefined;
  /**
   * Registers `only` tasks again (downloads in progress with their pieces, held tasks
   * as complete): after their scheduler went down, or when a scheduler forgot this host.
   */
  reannounce: (only: (taskId: string) => boolean) => Promise<void> = async () => undefined;

  constructor(private readonly opts: SchedulerRingOptions) {
    if (opts.urls.length === 0) throw new KilnError("BAD_REQUEST", "no scheduler to use");
    for (const url of opts.urls) this.add(url);
    if (opts.list && opts.refreshMs) {
      this.refreshTimer = setInterval(() => void this.refresh(), opts.refreshMs);
      this.refreshTimer.unref();
    }
  }

  /** The schedulers in the list, and whether each is up. */
  get schedulers(): { url: string; up: boolean }[] {
    return [...this.members.values()].map((m) => ({ url: m.url, up: m.up }));
  }

  /** Which scheduler `taskId` goes to now (its pin while that one is up, else the first live one of its ranking). */
  ownerOf(taskId: string): string {
    return this.owner(taskId).url;
  }

  stop(): void {
    clearInterval(this.refreshTimer);
  }

  private add(url: string): Member {
    let m = this.members.get(url);
    if (!m) {
      m = { url, client: new SchedulerClient(url, this.opts.clusterSecret), up: true, silent: 0 };
      this.members.set(url, m);
    }
    return m;
  }

  private owner(taskId: string, skip?: ReadonlySet<string>): Member {
    const pinned = this.pins.get(taskId);
    const pin = pinned === undefined ? undefined : this.members.get(pinned);
    if (pin?.up && !skip?.has(pin.url)) return pin;
    const ranked = rendezvousRank(
      taskId,
      [...this.members.keys()].filter((u) => !skip?.has(u)),
    ).map((u) => this.members.get(u)!);
    // With none up, the first of the ranking: its error is what the download sees.
    return ranked.find((m) => m.up) ?? ranked[0] ?? this.members.get(pinned ?? "") ?? [...this.members.values()][0]!;
  }

  /** Asks the manager for the list; members it no longer lists go down (their tasks move), new ones join the ranking. */
  async refresh(): Promise<void> {
    const { list, log } = this.opts;
    if (!list) return;
    let urls: string[];
    try {
      urls = [...new Set(await list())];
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not refresh the cluster's schedulers; keeping the list in hand");
      return;
    }
    if (urls.length === 0) return;
    const added = urls.filter((u) => !this.members.has(u));
    const removed = [...this.members.keys()].filter((u) => !urls.includes(u));
    for (const u of added) this.add(u);
    for (const u of removed) {
      this.down(u, "no longer listed by the manager");
      this.members.delete(u);
    }
    if (added.length || removed.length) log.info({ event: "schedulers", schedulers: urls, added, removed }, "the cluster's schedulers changed");
  }

  /** A call to `url` got no answer: a gone scheduler is down at once, a silent one after SILENT_STRIKES in a row. */
  private noAnswer(url: string, err: unknown): void {
    const m = this.members.get(url);
    if (!m) return;
    if (!isGone(err) && ++m.silent < SILENT_STRIKES) return;
    this.down(url, (err as Error).message);
  }

  private answered(m: Member): void {
    m.up = true;
    m.silent = 0;
  }

  /**
   * The member stopped answering: the tasks registered there are registered again
   * with the next live scheduler of their ranking, when there is one (with none,
   * they stay, and are registered again when it comes back and says it forgot this host).
   */
  private down(url: string, reason: string): void {
    const m = this.members.get(url);
    if (!m?.up) return;
    m.up = false;
    const others = [...this.members.values()].some((o) => o.up);
    this.opts.log.warn({ scheduler: url, reason, failover: others }, "scheduler down");
    if (!others) return;
    // Pins stay until a registration elsewhere replaces them: a move that fails (the next
    // scheduler sends the peer back here) leaves the task pinned, to move when this one dies.
    const moved = new Set<string>();
    for (const [taskId, pinned] of this.pins) if (pinned === url) moved.add(taskId);
    if (moved.size === 0) return;
    this.move(moved);
    this.opts.log.info({ scheduler: url, tasks: moved.size }, "registering its tasks with the next scheduler of each");
  }

  /** Registers `tasks` again with their scheduler now; their calls wait for it. */
  private move(tasks: Set<string>): void {
    const done = this.reannounce((id) => tasks.has(id)).catch((err: Error) => this.opts.log.warn({ err: err.message }, "could not move tasks"));
    for (const taskId of tasks) this.moving.set(taskId, done);
    void done.finally(() => {
      for (const taskId of tasks) if (this.moving.get(taskId) === done) this.moving.delete(taskId);
    });
  }

  /**
   * Announces the host to every scheduler of the list. A scheduler that did not know
   * the host gets the tasks it owns registered again. Resolves with the reply of the
   * first scheduler by URL that answered (its upload credential: the same from every
   * scheduler of a cluster with a secret); rejects when none answered.
   */
  async announceHost(host: HostAnnounceInput): Promise<HostAnnounceReply> {
    const members = [...this.members.values()].sort((a, b) => (a.url < b.url ? -1 : 1));
    const replies = await Promise.all(
      members.map(async (m) => {
        try {
          const reply = await m.client.announceHost(host);
          this.answered(m);
          return { m, reply };
        } catch (err) {
          if (isUnreachable(err)) this.noAnswer(m.url, err);
          return { m, err: err as Error };
        }
      }),
    );
    const forgot = replies.filter((r) => r.reply?.created).map((r) => r.m.url);
    if (forgot.length) {
      const tasksOf = new Set(forgot);
      await this.reannounce((taskId) => tasksOf.has(this.owner(taskId).url));
    }
    const first = replies.find((r) => r.reply);
    if (first?.reply) return first.reply;
    throw replies[0]?.err ?? new KilnError("UNAVAILABLE", "no scheduler to announce to");
  }

  /** Tells every scheduler this host leaves. */
  async leaveHost(hostId: string): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.client.leaveHost(hostId).catch(() => undefined)));
  }

  /**
   * Registers with the task's scheduler: the next of its ranking when that one does
   * not answer, and the `owner` a scheduler names when it is another one's task.
   */
  async registerPeer(req: RegisterPeerInput) {
    const taskId = taskIdFor(req.download);
    const tried = new Set<string>();
    let target = this.owner(taskId);
    for (let redirects = 0; ; ) {
      try {
        const reply = await target.client.registerPeer(req);
        target.silent = 0;
        if (reply.owner === undefined) {
          this.pins.set(taskId, target.url);
          this.versionsFrom.set(taskId, target.url);
          return reply;
        }
        if (++redirects > MAX_REDIRECTS) throw new KilnError("UNAVAILABLE", `schedulers disagree on who has task ${taskId} (last: ${reply.owner})`);
        this.opts.log.debug({ task: taskId, from: target.url, to: reply.owner }, "task is another scheduler's");
        target = this.add(reply.owner);
      } catch (err) {
        if (!isUnreachable(err)) throw err;
        tried.add(target.url);
        this.noAnswer(target.url, err);
        const next = this.owner(taskId, tried);
        if (tried.has(next.url) || !next.up) throw err;
        target = next;
      }
    }
  }

  /** A call of a registered download, to its task's scheduler (after a move under way). */
  private async call<T>(taskId: string, f: (c: SchedulerClient, url: string) => Promise<T>, heal = true): Promise<T> {
    const moving = this.moving.get(taskId);
    if (moving) await moving;
    const m = this.owner(taskId);
    try {
      const r = await f(m.client, m.url);
      m.silent = 0;
      return r;
    } catch (err) {
      if (isUnreachable(err)) this.noAnswer(m.url, err);
      // The scheduler answers but does not know this download (it was moved there and the
      // move failed, or the scheduler lost it): register it there again, once at a time.
      else if (heal && isForgotten(err) && !this.moving.has(taskId)) {
        this.opts.log.info({ task: taskId, scheduler: m.url, err: (err as Error).message }, "scheduler does not know the download; registering it again");
        this.move(new Set([taskId]));
      }
      throw err;
    }
  }

  schedule(taskId: string, peerId: string, q: { since: number; count?: number; waitMs?: number }) {
    // Whose version `since` is, as the download computed it (before any move this call waits for).
    const from = this.versionsFrom.get(taskId);
    return this.call(taskId, async (c, url) => {
      const reply = await c.schedule(taskId, peerId, from === url ? q : { ...q, since: -1 });
      this.versionsFrom.set(taskId, url);
      return reply;
    });
  }

  reportPieces(taskId: string, peerId: string, report: PieceReport) {
    return this.call(taskId, (c) => c.reportPieces(taskId, peerId, report));
  }

  reportFailure(taskId: string, peerId: string, report: FailureReport) {
    return this.call(taskId, (c) => c.reportFailure(taskId, peerId, report));
  }

  reportResult(taskId: string, peerId: string, result: PeerResult) {
    return this.call(taskId, (c) => c.reportResult(taskId, peerId, result));
  }

  async leaveTask(taskId: string, peerId: string) {
    try {
      // Leaving a task the scheduler does not know is done: nothing to register again.
      return await this.call(taskId, (c) => c.leaveTask(taskId, peerId), false);
    } finally {
      this.pins.delete(taskId);
      this.versionsFrom.delete(taskId);
    }
  }
}
