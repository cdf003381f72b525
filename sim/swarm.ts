/**
 * One simulated swarm: a scheduler (kiln's SchedulerService, in process), a seed
 * peer, an origin and N nodes, on the simulated network and virtual clock.
 *
 * kiln's own code makes every decision: the scheduler's registration, roles (who goes
 * to the origin, seed triggering), parent selection and task lifecycle
 * (SchedulerService); a download's piece choice, per-parent limits, busy and stall
 * backoffs and blocking (PieceDispatcher); its schedule polls (SchedulePoller) and
 * report batching (TaskReporter); the parents' upload slots and line (UploadSlots)
 * and have feeds with super-seeding (HaveFeeds). Only the bytes are modelled (flows,
 * see network.ts) and the glue between those parts that session.ts does with real I/O
 * (sim/download.ts restates it: which call follows which).
 */
import { EventEmitter } from "node:events";
import { pino } from "pino";
import { BitSet } from "../src/common/bitset.js";
import { PEER, SCHEDULER } from "../src/common/defaults.js";
import { defaultPieceLength, pieceCount } from "../src/common/piece.js";
import type { DownloadSpec } from "../src/api/common.js";
import { RegisterPeer, type PieceInfo } from "../src/api/scheduler.js";
import { SchedulerService, defaultSchedulerOptions } from "../src/scheduler/service.js";
import type { ControlClientFactory } from "../src/scheduler/resource/peer-control.js";
import { Scheduling } from "../src/scheduler/scheduling/scheduling.js";
import { HaveFeeds } from "../src/peer/upload/have-feed.js";
import { UploadSlots } from "../src/peer/upload/upload-slots.js";
import type { StoredTask } from "../src/peer/storage/stored-task.js";
import type { ServerResponse } from "node:http";
import type { SessionScheduler } from "../src/peer/download/scheduler-port.js";
import { VirtualClock, seededRandom } from "./clock.js";
import { Link, Network, mbitToBytesPerMs } from "./network.js";
import { SimDownload, type DispatchRule } from "./download.js";

export const MiB = 1024 * 1024;

/** The scheduler route's answer to a report: `{ ok: true }` once the service took it. */
const ok = (_: void) => ({ ok: true as const });

export interface Scenario {
  name: string;
  nodes: number;
  sizeBytes: number;
  /** Node links, Mbit/s each direction. */
  linkMbit: number;
  /** The origin's cap for all its connections together, MB/s (10^6 bytes). */
  originMBps: number;
  /** Seed peers (on links of `seedLinkMbit`); 0: the first peer goes to the origin. */
  seeds: number;
  seedLinkMbit: number;
  /** Zones (IDCs); nodes are spread round robin; the origin, seed and scheduler are in zone 0. */
  zones: number;
  rttSameZoneMs: number;
  rttCrossZoneMs: number;
  /** Nodes join uniformly over this window (0: all at once). */
  arrivalSpreadMs: number;
  /** Share of nodes that die during their download (never come back). */
  failFraction: number;
  /** Share of nodes whose links are `slowFactor` times slower. */
  slowFraction: number;
  slowFactor: number;
  /** CPU work of a client before it asks its peer (kiln get's start-up), ms. */
  clientStartCpuMs: number;
  /** The testbed's shared CPUs (the bench's machine); absent: CPU is free. */
  cpu?: { cores: number; msPerMiB: number };
  /** Requests that wait for an upload slot beyond the slots (kiln's default: as many as the slots; 0: busy at once, as before 9433049). */
  uploadQueue?: number;
  /** Give up after this much virtual time. */
  limitMs: number;
  /**
   * Have-feed lines reaching one child are handled together on a grid of this many ms
   * (0: each instant on its own, as in the validation runs). Large swarms use a few ms:
   * it bounds the dispatcher runs (each O(pieces)) per child, at the cost of that delay.
   */
  feedBatchMs: number;
}

export const scenarioDefaults: Omit<Scenario, "name" | "nodes" | "sizeBytes"> = {
  linkMbit: 1000,
  originMBps: 50,
  seeds: 1,
  seedLinkMbit: 10_000,
  zones: 1,
  rttSameZoneMs: 0.5,
  rttCrossZoneMs: 30,
  arrivalSpreadMs: 0,
  failFraction: 0,
  slowFraction: 0,
  slowFactor: 10,
  clientStartCpuMs: 0,
  limitMs: 3_600_000,
  feedBatchMs: 0,
};

/** What a run is asked to vary from kiln's defaults (tests change decision rules through these). */
export interface RunOptions {
  seed: number;
  /** Wraps the real dispatcher's decisions (undefined: kiln's as they are). */
  dispatchRule?: DispatchRule;
  /** Overrides of kiln's download options (PEER defaults otherwise). */
  download?: Partial<{ concurrentPieces: number; piecesPerParent: number; parentsPerSchedule: number }>;
  uploadSlots?: { concurrency: number; queue: number };
}

/** The stored task a node holds, as its have feeds and dispatcher see it: verified pieces and their "piece" events. */
export class SimStore extends EventEmitter {
  readonly held = new BitSet();
  private readonly infos: PieceInfo[] = [];
  constructor(readonly taskId: string) {
    super();
  }
  has(n: number): boolean {
    return this.held.has(n);
  }
  add(info: PieceInfo): void {
    if (this.held.has(info.number)) return;
    this.held.add(info.number);
    this.infos.push(info);
    this.emit("piece", info.number);
  }
  pieces(): PieceInfo[] {
    return this.infos;
  }
}

/** The server side of one connection (a have feed or a piece request): what HaveFeeds and UploadSlots write to and watch. */
export class SimResponse extends EventEmitter {
  closed = false;
  constructor(private readonly onWrite: (line: string) => void = () => {}) {
    super();
  }
  writeHead(): this {
    return this;
  }
  write(chunk: string): boolean {
    if (!this.closed) this.onWrite(chunk);
    return true;
  }
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit("close");
  }
}

export class SimNode {
  alive = true;
  readonly link: Link;
  readonly slots: UploadSlots;
  readonly feeds: HaveFeeds;
  store: SimStore | undefined;
  download: SimDownload | undefined;
  /** Connections into this node's upload port (feeds and piece requests), closed when it dies. */
  readonly served = new Set<SimResponse>();
  /** Flows and requests this node's downloads or uploads take part in, cancelled when it dies. */
  readonly onDeath = new Set<() => void>();
  bytesServed = 0;
  joinedAt = Number.NaN;
  startedAt = Number.NaN;
  doneAt = Number.NaN;
  willFail = false;
  readonly controlToken = "t".repeat(32);
  keepalive: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly index: number,
    readonly hostId: string,
    readonly zone: number,
    readonly isSeed: boolean,
    upMbit: number,
    downMbit: number,
    slots: { concurrency: number; queue: number },
  ) {
    this.link = new Link(mbitToBytesPerMs(upMbit), mbitToBytesPerMs(downMbit));
    this.slots = new UploadSlots(slots.concurrency, slots.queue);
    this.feeds = new HaveFeeds(() => this.isSpreader(), {
      firstReceivers: PEER.spreadFirstReceivers,
      tickMs: PEER.spreadTickMs,
      idleReleaseMs: PEER.spreadIdleReleaseMs,
      forceReleaseMs: PEER.spreadForceReleaseMs,
    });
  }

  get ip(): string {
    return `10.${this.zone}.${(this.index >> 8) & 255}.${this.index & 255}`;
  }

  isSpreader(): boolean {
    return this.isSeed || this.download?.state === "back_to_source";
  }
}

/**
 * CPU time spent in kiln's scheduler code, by call. Every `sampleEvery`-th call of each
 * kind is timed with this process's CPU clock (process.cpuUsage: not wall time, which
 * the shared machine's load inflates; but a reading costs up to ~40 µs in this VM, so not on every call), and
 * the kind's total is its sampled mean × its calls.
 */
export class SchedulerMeter {
  calls = 0;
  private readonly kinds = new Map<string, { calls: number; sampled: number; ms: number }>();
  constructor(private readonly sampleEvery = 64) {}

  time<T>(name: string, fn: () => T): T {
    let k = this.kinds.get(name);
    if (!k) {
      k = { calls: 0, sampled: 0, ms: 0 };
      this.kinds.set(name, k);
    }
    this.calls++;
    if (k.calls++ % this.sampleEvery !== 0) return fn();
    const t0 = process.cpuUsage();
    try {
      return fn();
    } finally {
      const d = process.cpuUsage(t0);
      k.sampled++;
      k.ms += (d.user + d.system) / 1000;
    }
  }

  /** Estimated CPU ms by call kind. */
  get byCall(): Map<string, { calls: number; ms: number }> {
    const out = new Map<string, { calls: number; ms: number }>();
    for (const [name, k] of this.kinds) out.set(name, { calls: k.calls, ms: k.sampled ? (k.ms / k.sampled) * k.calls : 0 });
    return out;
  }

  get cpuMs(): number {
    let ms = 0;
    for (const v of this.byCall.values()) ms += v.ms;
    return ms;
  }
}

export interface SwarmResult {
  scenario: Scenario;
  seed: number;
  idealMs: number;
  /** Per node (not seeds): completion time from its client's start, NaN if it never completed. */
  completionMs: number[];
  failedNodes: number;
  unfinished: number;
  originBytes: number;
  seedBytes: number;
  /** Bytes each non-seed node served. */
  servedBytes: number[];
  schedulerCalls: number;
  schedulerCpuMs: number;
  schedulerByCall: Record<string, { calls: number; ms: number }>;
  virtualMs: number;
  wallMs: number;
  /** CPU time of this process over the run (user + system), ms: wall time on a shared machine overstates the cost. */
  cpuMs: number;
  events: number;
  /** Completions over time: [virtual s since start, nodes complete]. */
  timeline: [number, number][];
  pieceLength: number;
}

export class Swarm {
  readonly clock: VirtualClock;
  readonly net: Network;
  readonly service: SchedulerService;
  readonly meter = new SchedulerMeter();
  readonly nodes: SimNode[] = [];
  readonly seeds: SimNode[] = [];
  private readonly byHost = new Map<string, SimNode>();
  private readonly byAddress = new Map<string, SimNode>();
  readonly origin: Link;
  readonly spec: DownloadSpec;
  originBytes = 0;
  readonly rand: () => number;
  private unwrap: (() => void) | undefined;

  constructor(
    readonly scenario: Scenario,
    readonly opts: RunOptions,
  ) {
    // Two streams from one seed: scenario draws (who fails, when) and the code's own Math.random.
    this.rand = seededRandom(opts.seed * 2 + 1);
    this.clock = new VirtualClock(seededRandom(opts.seed * 2 + 2));
    // Small swarms drain every promise continuation at every instant (exact order); large
    // ones every 16th instant, running continuations a few hops deep at once in between.
    this.clock.fullDrainEvery = scenario.nodes <= 200 ? 1 : 16;
    this.net = new Network(this.clock, scenario.cpu);
    this.origin = new Link(scenario.originMBps * 1000, Number.POSITIVE_INFINITY);
    this.spec = { url: `http://origin.sim/blob/${scenario.name}.bin`, headers: {}, tag: "", application: "", filteredQueryParams: [] };
    const log = pino({ level: "silent" });
    const control: ControlClientFactory = (baseUrl) => ({
      baseUrl,
      prefetch: async (req) => {
        const node = this.byAddress.get(baseUrl);
        if (!node?.alive) throw new Error(`seed ${baseUrl} unreachable`);
        await this.delay(this.rtt(node, undefined) / 2);
        this.startDownload(node);
        return { accepted: true, taskId: req.taskId };
      },
      deleteTask: async () => ({ bytes: 0, deleted: false }),
      importImage: async () => {
        throw new Error("not simulated");
      },
    });
    // Long polls wait at most this long; the host timeout and GC loop are kiln's.
    this.service = new SchedulerService(log, { ...defaultSchedulerOptions }, control);
    const slots = opts.uploadSlots ?? { concurrency: PEER.uploadConcurrency, queue: scenario.uploadQueue ?? PEER.uploadConcurrency };
    for (let i = 0; i < scenario.seeds; i++) {
      const n = new SimNode(i, `seed-${i}`, 0, true, scenario.seedLinkMbit, scenario.seedLinkMbit, slots);
      this.seeds.push(n);
      this.register(n);
    }
    const slowEvery = scenario.slowFraction > 0 ? Math.round(1 / scenario.slowFraction) : 0;
    for (let i = 0; i < scenario.nodes; i++) {
      const slow = slowEvery > 0 && i % slowEvery === slowEvery - 1;
      const mbit = slow ? scenario.linkMbit / scenario.slowFactor : scenario.linkMbit;
      const n = new SimNode(scenario.seeds + i, `node-${i}`, i % scenario.zones, false, mbit, mbit, slots);
      this.nodes.push(n);
      this.register(n);
    }
  }

  private register(n: SimNode): void {
    this.byHost.set(n.hostId, n);
    this.byAddress.set(`http://${n.ip}:4000`, n);
  }

  node(hostId: string): SimNode | undefined {
    return this.byHost.get(hostId);
  }

  /** Round trip between two nodes (undefined: the zone-0 services: scheduler, origin). */
  rtt(a: SimNode | undefined, b: SimNode | undefined): number {
    const za = a?.zone ?? 0;
    const zb = b?.zone ?? 0;
    return za === zb ? this.scenario.rttSameZoneMs : this.scenario.rttCrossZoneMs;
  }

  delay(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.after(ms, resolve));
  }

  /** The scheduler as a node's download calls it: kiln's service, half a round trip away each way, its CPU measured. */
  schedulerFor(node: SimNode): SessionScheduler {
    const s = this.service;
    const m = this.meter;
    const half = () => this.rtt(node, undefined) / 2;
    const call = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
      await this.delay(half());
      if (!node.alive) throw new Error("ECONNRESET");
      const out = await m.time(name, fn);
      await this.delay(half());
      if (!node.alive) throw new Error("ECONNRESET");
      return out;
    };
    return {
      // The wire schema fills in defaults, as the scheduler's route does.
      registerPeer: (req) => call("register", () => s.register(RegisterPeer.parse(req))),
      schedule: (taskId, peerId, q) => call("schedule", () => s.schedule(taskId, peerId, q.since, q.count, q.waitMs)),
      reportPieces: (taskId, peerId, r) => call("report pieces", () => s.reportPieces(taskId, peerId, r)),
      reportFailure: (taskId, peerId, r) => call("report failure", () => ok(s.reportFailure(taskId, peerId, r))),
      reportResult: (taskId, peerId, r) => call("report result", () => ok(s.reportResult(taskId, peerId, r))),
    };
  }

  /** The node's host announces itself now and every keepalive period (kiln's), with its free upload slots. */
  private announce(node: SimNode): void {
    const send = () => {
      if (!node.alive) return;
      const info = {
        id: node.hostId,
        hostname: node.hostId,
        ip: node.ip,
        uploadPort: 4000,
        isSeed: node.isSeed,
        location: "",
        idc: `zone-${node.zone}`,
        uploadSlots: this.opts.uploadSlots?.concurrency ?? PEER.uploadConcurrency,
        freeUploadSlots: node.slots.free,
        controlToken: node.controlToken,
        labels: {},
        version: "sim",
      };
      this.clock.after(this.rtt(node, undefined) / 2, () => {
        if (node.alive) this.meter.time("announce", () => this.service.announceHost(info));
      });
    };
    send();
    node.keepalive = setInterval(send, SCHEDULER.keepAliveMs);
  }

  /** The node's peer downloads the task (a client asked, or the scheduler triggered a seed). */
  startDownload(node: SimNode): void {
    if (node.download || !node.alive) return;
    node.store ??= new SimStore("");
    node.download = new SimDownload(this, node, this.opts);
    node.startedAt = Number.isNaN(node.startedAt) ? this.clock.now : node.startedAt;
    node.download.run();
  }

  /** The node's store as HaveFeeds takes it. */
  storeOf(node: SimNode): StoredTask {
    return node.store as unknown as StoredTask;
  }

  /**
   * Opens `child`'s have feed on `parent`'s upload port; lines reach the child half a
   * round trip later (`onLine` takes the line and when it arrives; the child batches).
   */
  subscribe(parent: SimNode, child: SimNode, onLine: (line: string, at: number, res: SimResponse) => void): SimResponse {
    const lat = this.rtt(parent, child) / 2;
    const res: SimResponse = new SimResponse((line) => onLine(line, this.clock.now + lat, res));
    parent.served.add(res);
    res.once("close", () => parent.served.delete(res));
    parent.feeds.subscribe(this.storeOf(parent), res as unknown as ServerResponse);
    return res;
  }

  /** The node dies now: its flows stop, its connections break, its host stops announcing. */
  kill(node: SimNode): void {
    if (!node.alive) return;
    node.alive = false;
    clearInterval(node.keepalive);
    if (node.download) node.download.halt();
    else if (!node.isSeed) this.onNodeEnd(node, false);
    for (const f of [...node.onDeath]) f();
    node.onDeath.clear();
    for (const res of [...node.served]) res.destroy();
    node.feeds.closeAll();
  }

  /** Bytes a seed or the origin sent, per the flows' accounting. */
  ideal(): number {
    const s = this.scenario;
    return Math.max((s.sizeBytes / (s.originMBps * 1e6)) * 1000, ((s.sizeBytes * 8) / (s.linkMbit * 1e6)) * 1000);
  }

  /** Wraps the scheduler's long-poll answer (computed after the wait) so its CPU counts too. */
  private meterReplies(): () => void {
    const proto = Scheduling.prototype;
    const original = proto.reply;
    const meter = this.meter;
    proto.reply = function (this: Scheduling, ...args: Parameters<typeof original>) {
      return meter.time("schedule answer", () => original.apply(this, args));
    };
    return () => {
      proto.reply = original;
    };
  }

  async run(): Promise<SwarmResult> {
    const wall0 = performance.now();
    const cpu0 = process.cpuUsage();
    const s = this.scenario;
    this.clock.install();
    this.unwrap = this.meterReplies();
    try {
      const gc = setInterval(() => this.meter.time("gc", () => this.service.collectGarbage(Date.now())), SCHEDULER.gcIntervalMs);
      for (const seed of this.seeds) {
        seed.joinedAt = 0;
        this.announce(seed);
      }
      const timeline: [number, number][] = [[0, 0]];
      let completed = 0;
      let ended = 0;
      const total = this.nodes.length;
      // Who fails, and when: during its download, at a uniform share of the ideal time.
      const failing = Math.round(total * s.failFraction);
      const order = this.nodes.map((n) => n).sort(() => this.rand() - 0.5);
      for (const n of order.slice(0, failing)) n.willFail = true;
      for (const node of this.nodes) {
        const joinAt = s.arrivalSpreadMs > 0 ? this.rand() * s.arrivalSpreadMs : 0;
        this.clock.at(joinAt, () => {
          node.joinedAt = this.clock.now;
          this.announce(node);
          // The client starts (its own CPU work), then asks its peer.
          this.net.cpuWork(s.clientStartCpuMs, () => {
            // The host's first announce must have landed before its peer registers.
            this.clock.after(this.rtt(node, undefined), () => this.startDownload(node));
          });
          if (node.willFail) this.clock.after(this.rand() * this.ideal() * 1.5 + s.clientStartCpuMs, () => this.kill(node));
        });
      }
      const onEnd = (node: SimNode, ok: boolean) => {
        if (node.isSeed) return;
        ended++;
        if (ok) {
          completed++;
          node.doneAt = this.clock.now;
          timeline.push([this.clock.now / 1000, completed]);
        }
      };
      this.onNodeEnd = onEnd;
      // Progress on stderr for long runs: every 5 virtual seconds.
      const progress = process.env.SIM_PROGRESS
        ? setInterval(() => {
            const cpu = process.cpuUsage(cpu0);
            console.error(
              `  ${s.name}: ${(this.clock.now / 1000).toFixed(0)} s virtual, ${completed}/${total} complete, ${((cpu.user + cpu.system) / 1e6).toFixed(0)} s CPU, ${(this.clock.events / 1e6).toFixed(1)} M events`,
            );
          }, 5000)
        : undefined;
      await this.clock.run(() => ended >= total, s.limitMs);
      clearInterval(gc);
      clearInterval(progress);
      for (const n of [...this.nodes, ...this.seeds]) {
        clearInterval(n.keepalive);
        n.download?.halt();
        n.feeds.closeAll();
      }
      const completionMs = this.nodes.map((n) => (Number.isNaN(n.doneAt) ? Number.NaN : n.doneAt - n.joinedAt));
      const byCall: Record<string, { calls: number; ms: number }> = {};
      for (const [k, v] of this.meter.byCall) byCall[k] = { ...v };
      return {
        scenario: s,
        seed: this.opts.seed,
        idealMs: this.ideal(),
        completionMs,
        failedNodes: this.nodes.filter((n) => !n.alive).length,
        unfinished: this.nodes.filter((n) => n.alive && Number.isNaN(n.doneAt)).length,
        originBytes: this.originBytes,
        seedBytes: this.seeds.reduce((a, n) => a + n.bytesServed, 0),
        servedBytes: this.nodes.map((n) => n.bytesServed),
        schedulerCalls: this.meter.calls,
        schedulerCpuMs: this.meter.cpuMs,
        schedulerByCall: byCall,
        virtualMs: this.clock.now,
        wallMs: performance.now() - wall0,
        cpuMs: ((u) => (u.user + u.system) / 1000)(process.cpuUsage(cpu0)),
        events: this.clock.events,
        timeline,
        pieceLength: defaultPieceLength(s.sizeBytes),
      };
    } finally {
      this.unwrap?.();
      this.clock.uninstall();
    }
  }

  /** Called by a node's download when it ends, `ok` when every piece is verified. */
  onNodeEnd: (node: SimNode, ok: boolean) => void = () => {};

  /** Pieces of the task and the digest a real origin fetch would have computed for each. */
  pieceInfo(n: number, pieceLength: number): PieceInfo {
    const total = this.scenario.sizeBytes;
    const length = Math.min(pieceLength, total - n * pieceLength);
    return { number: n, digest: `sha256:${n.toString(16).padStart(64, "0")}`, length };
  }

  totalPieces(pieceLength: number): number {
    return pieceCount(this.scenario.sizeBytes, pieceLength);
  }
}
