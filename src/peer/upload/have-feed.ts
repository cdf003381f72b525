/**
 * The have feeds of this peer's upload port. Each child downloading a task from this
 * peer keeps one feed open and hears of every piece as it is verified here, so piece
 * availability flows from parent to child directly, not through the scheduler
 * (BitTorrent's "have" messages, Dragonfly's piece sync).
 *
 * A spreader (a seed peer, or the peer fetching the task from the origin) would be
 * asked for each new piece by every child at once. It super-seeds instead: a new piece
 * is announced to `firstReceivers` subscribers only, taken in turn so consecutive
 * pieces go to different children, and they pass it on through their own feeds. The
 * rules follow the uploads, not the clock, so they hold at any link speed:
 * - a piece no child is fetching, or whose every fetch broke off, is offered to the
 *   next subscribers each tick;
 * - a piece being sent, or asked for and waiting for an upload slot, is left alone however
 *   long that takes;
 * - a piece sent whole once is in the swarm: it is announced to everyone only when
 *   this peer's uplink has had no piece of the task to send for `idleReleaseMs`
 *   (spare uplink goes to second copies, never ahead of first ones);
 * - `forceReleaseMs` after it landed, every piece is announced to everyone, so no
 *   child waits for long on a receiver that went away.
 */
import type { ServerResponse } from "node:http";
import { BitSet } from "../../common/bitset.js";
import { HAVE_FEED_CONTENT_TYPE, encodeHaveFeedLine } from "../../api/peer.js";
import type { StoredTask } from "../storage/stored-task.js";

export interface SpreadPolicy {
  firstReceivers: number;
  /** How often a piece nobody is fetching is offered to the next subscribers. */
  tickMs: number;
  /** With no piece upload of the task for this long, pieces sent once are announced to everyone. */
  idleReleaseMs: number;
  /** Every piece is announced to everyone this long after it landed. */
  forceReleaseMs: number;
}

interface Subscriber {
  res: ServerResponse;
  told: BitSet;
}

interface Spreading {
  landedAt: number;
  /** Subscribers told of it so far. */
  offered: number;
  /** Uploads of the piece in progress from here. */
  sending: number;
  /** Uploads of the piece that finished whole. */
  sent: number;
}

/** One task's feeds. */
class TaskFeeds {
  readonly subscribers: Subscriber[] = [];
  /** Spreader only: pieces not yet announced to everyone. */
  private readonly spreading = new Map<number, Spreading>();
  private readonly released = new BitSet();
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Piece uploads of this task in progress, and when the last one ended. */
  private uploads = 0;
  private idleSince = Date.now();
  private readonly onPiece = (n: number) => this.landed(n, Date.now());
  private readonly onFailed = () => this.close();

  constructor(
    readonly task: StoredTask,
    private readonly spreader: () => boolean,
    private readonly policy: SpreadPolicy,
    private readonly onEmpty: () => void,
  ) {
    task.on("piece", this.onPiece);
    task.once("failed", this.onFailed);
    // What a spreader already held when its first child came (a preheated seed) is spread like new pieces.
    const now = Date.now();
    for (const p of task.pieces()) this.landed(p.number, now, false);
  }

  subscribe(res: ServerResponse): void {
    const sub: Subscriber = { res, told: new BitSet() };
    const snapshot = this.spreader() ? this.released : this.held();
    for (const n of snapshot) sub.told.add(n);
    this.subscribers.push(sub);
    res.writeHead(200, { "content-type": HAVE_FEED_CONTENT_TYPE, "cache-control": "no-store" });
    res.write(encodeHaveFeedLine({ type: "bits", base64: snapshot.toBase64() }));
    res.once("close", () => this.unsubscribe(sub));
    // A new child starts at once with one piece nobody was offered yet (the rest go round at the
    // next tick, in turn): the single child of a seed that got the piece before the child
    // subscribed waited a tick, 250 ms, on every small task.
    for (const [n, s] of this.spreading) {
      if (s.offered > 0) continue;
      this.tellSpreading(sub, n, s);
      break;
    }
  }

  /** A child asked for piece `n` here (its upload may wait for a slot): a spreader stops offering it around meanwhile. */
  uploadStarted(n: number): void {
    this.uploads++;
    const s = this.spreading.get(n);
    if (s) s.sending++;
  }

  /** That fetch ended, `whole` if every byte went out. */
  uploadEnded(n: number, whole: boolean, now = Date.now()): void {
    this.uploads--;
    if (this.uploads === 0) this.idleSince = now;
    const s = this.spreading.get(n);
    if (!s) return;
    s.sending--;
    if (whole) s.sent++;
  }

  close(): void {
    clearInterval(this.timer);
    this.task.off("piece", this.onPiece);
    this.task.off("failed", this.onFailed);
    for (const sub of this.subscribers.splice(0)) sub.res.destroy();
  }

  private held(): BitSet {
    const bits = new BitSet();
    for (const p of this.task.pieces()) bits.add(p.number);
    return bits;
  }

  private landed(n: number, now: number, offerNow = true): void {
    if (!this.spreader()) {
      this.release(n);
      return;
    }
    if (this.released.has(n) || this.spreading.has(n)) return;
    this.spreading.set(n, { landedAt: now, offered: 0, sending: 0, sent: 0 });
    if (offerNow) this.offer(n, this.policy.firstReceivers);
    this.timer ??= setInterval(() => this.tick(Date.now()), this.policy.tickMs);
  }

  private tick(now: number): void {
    if (!this.spreader()) {
      for (const n of [...this.spreading.keys()]) this.release(n);
    }
    const idle = this.uploads === 0 && now - this.idleSince >= this.policy.idleReleaseMs;
    for (const [n, s] of this.spreading) {
      if (now - s.landedAt >= this.policy.forceReleaseMs || (idle && s.sent > 0)) this.release(n);
      else if (s.sent === 0 && s.sending === 0) this.offer(n, this.policy.firstReceivers);
    }
    if (this.spreading.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Tells `count` more subscribers, in turn, of piece `n`. */
  private offer(n: number, count: number): void {
    const subs = this.subscribers;
    const s = this.spreading.get(n);
    if (!s) return;
    for (let i = 0, told = 0; i < subs.length && told < count; i++) {
      const sub = subs[this.cursor++ % subs.length]!;
      if (sub.told.has(n)) continue;
      this.tellSpreading(sub, n, s);
      told++;
    }
  }

  private tellSpreading(sub: Subscriber, n: number, s: Spreading): void {
    s.offered++;
    this.tell(sub, n);
  }

  private release(n: number): void {
    this.spreading.delete(n);
    this.released.add(n);
    for (const sub of this.subscribers) this.tell(sub, n);
  }

  private tell(sub: Subscriber, n: number): void {
    if (sub.told.has(n)) return;
    sub.told.add(n);
    sub.res.write(encodeHaveFeedLine({ type: "have", piece: n }));
  }

  private unsubscribe(sub: Subscriber): void {
    const i = this.subscribers.indexOf(sub);
    if (i >= 0) this.subscribers.splice(i, 1);
    if (this.subscribers.length === 0) this.onEmpty();
  }
}

/** Every task's feeds on this upload port. */
export class HaveFeeds {
  private readonly tasks = new Map<string, TaskFeeds>();

  constructor(
    /** Whether this peer spreads the task (a seed, or fetching it from the origin). */
    private readonly isSpreader: (taskId: string) => boolean,
    private readonly policy: SpreadPolicy,
  ) {}

  subscribe(task: StoredTask, res: ServerResponse): void {
    let feeds = this.tasks.get(task.taskId);
    if (!feeds || feeds.task !== task) {
      feeds?.close();
      const created: TaskFeeds = new TaskFeeds(
        task,
        () => this.isSpreader(task.taskId),
        this.policy,
        () => {
          if (this.tasks.get(task.taskId) !== created) return;
          created.close();
          this.tasks.delete(task.taskId);
        },
      );
      feeds = created;
      this.tasks.set(task.taskId, feeds);
    }
    feeds.subscribe(res);
  }

  /** A piece was asked for (it may wait for a slot); call `ended` when it is over, `whole` if every byte went out. */
  uploadStarted(taskId: string, n: number): (whole: boolean) => void {
    const feeds = this.tasks.get(taskId);
    feeds?.uploadStarted(n);
    return (whole) => feeds?.uploadEnded(n, whole);
  }

  /** Ends every feed of the task (it is deleted). */
  end(taskId: string): void {
    this.tasks.get(taskId)?.close();
    this.tasks.delete(taskId);
  }

  /** Subscribers of a task's feed (metrics, tests). */
  subscribers(taskId: string): number {
    return this.tasks.get(taskId)?.subscribers.length ?? 0;
  }

  closeAll(): void {
    for (const feeds of this.tasks.values()) feeds.close();
    this.tasks.clear();
  }
}
