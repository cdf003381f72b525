/**
 * The simulated network: one flow per piece transfer (not per packet), each at
 * min(its sender's uplink ÷ the sender's flows, its receiver's downlink ÷ the
 * receiver's flows). A flow starting or ending re-rates only the flows sharing one of
 * its two links, so the cost of an event does not grow with the swarm. An optional
 * testbed CPU pool (the bench's machine: 2 cores for every process) caps the bytes
 * all flows move per second together and re-rates every flow globally.
 */
import type { VirtualClock, VirtualTimer } from "./clock.js";

/** Rates are in bytes per millisecond (1 Gbit/s = 125,000 bytes/ms). */
export const mbitToBytesPerMs = (mbit: number) => (mbit * 1e6) / 8 / 1000;

export class Link {
  readonly upFlows = new Set<Flow>();
  readonly downFlows = new Set<Flow>();
  constructor(
    /** Uplink, bytes/ms. */
    public up: number,
    /** Downlink, bytes/ms. */
    public down: number,
  ) {}
}

export class Flow {
  rate = 0;
  lastUpdate: number;
  done: VirtualTimer | undefined;
  constructor(
    readonly from: Link,
    readonly to: Link,
    public remaining: number,
    readonly onDone: () => void,
    now: number,
  ) {
    this.lastUpdate = now;
  }
}

/** A testbed whose processes share `cores` CPUs: every byte delivered costs `msPerMiB` of CPU (both ends together). */
export interface CpuPool {
  cores: number;
  msPerMiB: number;
}

/** Fixed CPU work (a client process starting up): one core's worth of demand while it runs. */
class CpuJob {
  lastUpdate: number;
  done: VirtualTimer | undefined;
  constructor(
    public remaining: number,
    readonly onDone: () => void,
    now: number,
  ) {
    this.lastUpdate = now;
  }
}

export class Network {
  private readonly flows = new Set<Flow>();
  /** Bytes delivered over all flows. */
  bytes = 0;
  /** Share of its demand every CPU consumer gets (1 unless the testbed's cores are saturated). */
  private cpuScale = 1;
  private readonly jobs = new Set<CpuJob>();

  constructor(
    private readonly clock: VirtualClock,
    private readonly cpu?: CpuPool,
  ) {}

  /** Starts moving `bytes` from `from`'s uplink to `to`'s downlink; returns the flow (abort() it to stop). */
  start(from: Link, to: Link, bytes: number, onDone: () => void): Flow {
    const f = new Flow(from, to, bytes, onDone, this.clock.now);
    from.upFlows.add(f);
    to.downFlows.add(f);
    this.flows.add(f);
    this.rerate(from, to);
    return f;
  }

  /** Stops a flow before it finished (either end went away); no callback runs. */
  abort(f: Flow): void {
    if (!this.flows.has(f)) return;
    this.settle(f);
    this.remove(f);
  }

  /** Runs `cpuMs` of fixed CPU work, sharing the testbed's cores with the flows (at once, without a CPU pool). */
  cpuWork(cpuMs: number, onDone: () => void): void {
    if (!this.cpu || cpuMs <= 0) return void this.clock.after(cpuMs, onDone);
    this.jobs.add(new CpuJob(cpuMs, onDone, this.clock.now));
    this.rerateAll();
  }

  private remove(f: Flow): void {
    this.clock.cancel(f.done);
    this.flows.delete(f);
    f.from.upFlows.delete(f);
    f.to.downFlows.delete(f);
    this.rerate(f.from, f.to);
  }

  private settle(f: Flow): void {
    const now = this.clock.now;
    const moved = Math.min(f.remaining, f.rate * (now - f.lastUpdate));
    f.remaining -= moved;
    this.bytes += moved;
    f.lastUpdate = now;
  }

  private rerate(from: Link, to: Link): void {
    if (this.cpu) return this.rerateAll();
    for (const f of from.upFlows) this.update(f, 1);
    for (const f of to.downFlows) if (f.from !== from) this.update(f, 1);
  }

  /**
   * Processor sharing on the testbed: each starting process wants a core, each flow
   * rate × CPU per byte; when that is more than the cores, everyone gets the same share.
   */
  private rerateAll(): void {
    const cpu = this.cpu!;
    const now = this.clock.now;
    for (const j of this.jobs) {
      j.remaining -= this.cpuScale * (now - j.lastUpdate);
      j.lastUpdate = now;
    }
    let want = 0;
    for (const f of this.flows) want += share(f);
    const flowCores = (want * cpu.msPerMiB) / 1048576;
    const demand = flowCores + this.jobs.size;
    this.cpuScale = demand > cpu.cores ? cpu.cores / demand : 1;
    for (const f of this.flows) this.update(f, this.cpuScale);
    for (const j of this.jobs) {
      this.clock.cancel(j.done);
      j.done = this.clock.after(Math.max(0, j.remaining) / this.cpuScale, () => {
        this.jobs.delete(j);
        this.rerateAll();
        j.onDone();
      });
    }
  }

  /**
   * Re-rates a flow. Its completion event is moved only when it must come earlier; an
   * event that fires early (the flow slowed down meanwhile) looks again and waits for
   * the rest, so a rate that drops costs no heap churn.
   */
  private update(f: Flow, scale: number): void {
    this.settle(f);
    const rate = share(f) * scale;
    if (rate === f.rate && f.done) return;
    f.rate = rate;
    const eta = rate > 0 ? this.clock.now + f.remaining / rate : Number.POSITIVE_INFINITY;
    if (f.done && !f.done.cancelled && f.done.at <= eta) return;
    this.clock.cancel(f.done);
    f.done = Number.isFinite(eta) ? this.clock.at(eta, () => this.due(f)) : undefined;
  }

  private due(f: Flow): void {
    f.done = undefined;
    this.settle(f);
    // Less than a byte left is rounding: the flow is done.
    if (f.remaining > 1 && f.rate > 0) {
      f.done = this.clock.at(this.clock.now + f.remaining / f.rate, () => this.due(f));
      return;
    }
    if (f.remaining > 1) return;
    this.bytes += f.remaining;
    f.remaining = 0;
    this.remove(f);
    f.onDone();
  }
}

function share(f: Flow): number {
  return Math.min(f.from.up / f.from.upFlows.size, f.to.down / f.to.downFlows.size);
}
