/**
 * The schedule polls of one download. Each poll is a long poll: the scheduler answers
 * when the task changed since the version the peer last saw. Every piece report of any
 * peer changes the task, so a peer that polled again at once would poll once per
 * report of the whole swarm; instead a download polls again only when it can use the
 * answer (a free piece slot with nothing to start), never twice within
 * `PEER.pollGapMs`, and refreshes its parents every `PEER.pollRefreshMs` otherwise.
 * A download waiting on a digest (a parent holds a piece the scheduler has not told it
 * the digest of) polls at once: the long poll ends when that digest's report lands.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { PEER } from "../../common/defaults.js";
import type { Logger } from "../../common/logger.js";
import type { ScheduleReply } from "../../api/scheduler.js";
import type { SessionScheduler } from "./scheduler-port.js";

export interface PollHooks {
  /** Whether to go on polling. */
  active(): boolean;
  /** Whether the download has room for work it does not know of. */
  hungry(): boolean;
  /** Whether it waits on something only the next answer can bring (a piece's digest): no gap before that poll. */
  urgent(): boolean;
  /** The task version last seen and the number of parents wanted. */
  query(): { since: number; count: number };
  apply(reply: ScheduleReply): Promise<void>;
  /** A schedule call failed (the scheduler did not answer, or refused), with its error. */
  failed(message: string): void;
  /** After each answer (or failed call). */
  polled(): void;
}

export class SchedulePoller {
  /** Schedule calls made so far. */
  polls = 0;
  private wakeUp: (() => void) | undefined;
  private hurryUp: (() => void) | undefined;

  constructor(
    private readonly scheduler: SessionScheduler,
    private readonly taskId: string,
    private readonly peerId: string,
    private readonly hooks: PollHooks,
    private readonly log: Logger,
  ) {}

  async run(): Promise<void> {
    let errors = 0;
    while (this.hooks.active()) {
      const polledAt = Date.now();
      try {
        this.polls++;
        const reply = await this.scheduler.schedule(this.taskId, this.peerId, this.hooks.query());
        errors = 0;
        await this.hooks.apply(reply);
      } catch (err) {
        if (!this.hooks.active()) return;
        errors++;
        this.hooks.failed((err as Error).message);
        this.log.warn({ err: (err as Error).message, errors }, "schedule call failed");
        await sleep(Math.min(2_000, 100 * 2 ** errors));
      }
      this.hooks.polled();
      await this.due(polledAt);
    }
  }

  /** The download has a free slot and nothing to start in it (or it is over): poll now. */
  wake(): void {
    this.wakeUp?.();
  }

  /** The download now waits on a digest (see `urgent`): poll now, even within the gap. */
  hurry(): void {
    this.hurryUp?.();
  }

  private async due(polledAt: number): Promise<void> {
    if (!this.hooks.active() || this.hooks.urgent()) return;
    if (!this.hooks.hungry()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.wakeUp?.(), PEER.pollRefreshMs);
        this.wakeUp = this.hurryUp = () => {
          clearTimeout(timer);
          this.wakeUp = this.hurryUp = undefined;
          resolve();
        };
      });
    }
    const gap = polledAt + PEER.pollGapMs - Date.now();
    if (gap <= 0 || !this.hooks.active() || this.hooks.urgent()) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.hurryUp?.(), gap);
      this.hurryUp = () => {
        clearTimeout(timer);
        this.hurryUp = undefined;
        resolve();
      };
    });
  }
}
