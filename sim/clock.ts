/**
 * Virtual time for the swarm simulator. While installed, Date.now, the global timers,
 * node:timers and node:timers/promises' setTimeout, and Math.random are this clock's
 * (a seeded generator), so kiln's own code (the scheduler's long polls and windows,
 * the poller's gaps, the reporter's batching, the have feeds' spreading ticks) runs on
 * simulated milliseconds, deterministically. Events run in time order; between two
 * instants every pending promise continuation runs (a real setImmediate), so async
 * code sees the same order of effects it would see on a real event loop.
 */
import { createRequire, syncBuiltinESMExports } from "node:module";

const require = createRequire(import.meta.url);
const timers = require("node:timers") as typeof import("node:timers");
const timersPromises = require("node:timers/promises") as typeof import("node:timers/promises");

/** Mulberry32: small, fast, good enough to draw scenario randomness from a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A scheduled callback; also what the patched setTimeout returns (it looks enough like Node's Timeout). */
export class VirtualTimer {
  cancelled = false;
  /** Ran (and will not again): cancelling it changes nothing in the heap. */
  fired = false;
  constructor(
    public at: number,
    readonly seq: number,
    readonly fn: () => void,
    readonly repeatMs: number | undefined,
  ) {}
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return true;
  }
  [Symbol.toPrimitive](): number {
    return this.seq;
  }
}

/** Binary min-heap of timers by (time, sequence). */
class TimerHeap {
  private readonly items: VirtualTimer[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): VirtualTimer | undefined {
    return this.items[0];
  }
  push(t: VirtualTimer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  /** Keeps only the timers `keep` accepts, in heap order again. */
  rebuild(keep: (t: VirtualTimer) => boolean): void {
    const kept = this.items.filter(keep);
    this.items.length = 0;
    for (const t of kept) this.push(t);
  }

  pop(): VirtualTimer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const realSetImmediate = globalThis.setImmediate;
const drain = () => new Promise<void>((resolve) => realSetImmediate(resolve));

/** Wall-clock epoch the virtual clock starts at (Date.now() = EPOCH + now). */
const EPOCH = Date.UTC(2026, 0, 1);

export class VirtualClock {
  /** Milliseconds since the simulation started. */
  now = 0;
  private seq = 0;
  private readonly heap = new TimerHeap();
  private restore: (() => void) | undefined;
  /** Events run so far. */
  events = 0;
  private instants = 0;
  /** 1: every instant ends with a full drain of promise continuations (exact order). */
  fullDrainEvery = 1;

  constructor(readonly random: () => number) {}

  at(time: number, fn: () => void): VirtualTimer {
    const t = new VirtualTimer(Math.max(time, this.now), this.seq++, fn, undefined);
    this.heap.push(t);
    return t;
  }

  after(ms: number, fn: () => void): VirtualTimer {
    return this.at(this.now + Math.max(0, ms), fn);
  }

  /** Cancelled timers still in the heap; past half of it the heap is rebuilt without them. */
  private cancelledInHeap = 0;

  cancel(t: unknown): void {
    if (!(t instanceof VirtualTimer) || t.cancelled || t.fired) return;
    t.cancelled = true;
    // A long poll answered early cancels its 5 s timer: at 10,000 nodes, a million of them.
    if (++this.cancelledInHeap > 4096 && this.cancelledInHeap * 2 > this.heap.size) {
      this.heap.rebuild((x) => !x.cancelled);
      this.cancelledInHeap = 0;
    }
  }

  /** Makes Date.now, the timers and Math.random this clock's until uninstall(). */
  install(): void {
    if (this.restore) return;
    const saved = {
      now: Date.now,
      random: Math.random,
      g: {
        setTimeout: globalThis.setTimeout,
        clearTimeout: globalThis.clearTimeout,
        setInterval: globalThis.setInterval,
        clearInterval: globalThis.clearInterval,
      },
      t: { setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout, setInterval: timers.setInterval, clearInterval: timers.clearInterval },
      p: timersPromises.setTimeout,
    };
    const setTimeoutV = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => this.after(ms ?? 0, () => fn(...args));
    const setIntervalV = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const every = Math.max(1, ms ?? 1);
      const t = new VirtualTimer(this.now + every, this.seq++, () => fn(...args), every);
      this.heap.push(t);
      return t;
    };
    const clearV = (t: unknown) => this.cancel(t);
    const sleepV = <T>(ms?: number, value?: T, opts?: { signal?: AbortSignal }) =>
      new Promise<T | undefined>((resolve, reject) => {
        const signal = opts?.signal;
        if (signal?.aborted) return reject(signal.reason);
        const t = this.after(ms ?? 0, () => resolve(value));
        signal?.addEventListener("abort", () => {
          this.cancel(t);
          reject(signal.reason);
        });
      });
    const patch = {
      setTimeout: setTimeoutV as unknown as typeof globalThis.setTimeout,
      clearTimeout: clearV as typeof globalThis.clearTimeout,
      setInterval: setIntervalV as unknown as typeof globalThis.setInterval,
      clearInterval: clearV as typeof globalThis.clearInterval,
    };
    Object.assign(globalThis, patch);
    Object.assign(timers, patch);
    (timersPromises as { setTimeout: unknown }).setTimeout = sleepV;
    syncBuiltinESMExports();
    Date.now = () => EPOCH + this.now;
    Math.random = this.random;
    this.restore = () => {
      Object.assign(globalThis, saved.g);
      Object.assign(timers, saved.t);
      (timersPromises as { setTimeout: unknown }).setTimeout = saved.p;
      syncBuiltinESMExports();
      Date.now = saved.now;
      Math.random = saved.random;
    };
  }

  uninstall(): void {
    this.restore?.();
    this.restore = undefined;
  }

  /**
   * Runs events in time order until none is left, `stop()` says so (checked after each
   * instant) or the clock passes `untilMs`. Promise continuations of one instant run
   * before the next instant.
   */
  async run(stop: () => boolean, untilMs = Number.POSITIVE_INFINITY): Promise<void> {
    await drain();
    while (this.heap.size) {
      const first = this.heap.peek()!;
      if (first.at > untilMs) break;
      this.now = first.at;
      while (this.heap.size && this.heap.peek()!.at === this.now) {
        const t = this.heap.pop()!;
        if (t.cancelled) {
          this.cancelledInHeap--;
          continue;
        }
        this.events++;
        if (t.repeatMs !== undefined) {
          t.at = this.now + t.repeatMs;
          this.heap.push(t);
        } else t.fired = true;
        t.fn();
      }
      // Continuations a few hops deep run at once (cheap); a full drain (a real
      // setImmediate, ~9 µs) every `fullDrainEvery` instants catches deeper chains.
      if (++this.instants % this.fullDrainEvery === 0) await drain();
      else for (let i = 0; i < 4; i++) await undefined;
      if (stop()) break;
    }
    await drain();
  }
}
