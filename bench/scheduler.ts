/**
 * Scheduler at scale: one real `kiln scheduler` process, and a load generator in
 * this process that speaks to it over HTTP with the real SchedulerClient (Node's
 * fetch keeps its connections alive). 10,000 hosts announce; then, per case, the
 * swarm is built (each task gets an origin fetcher that reports every piece, then
 * its peers register and half of them report half the pieces), and we measure:
 * registrations (each answered with parents) into the full swarm, schedule calls
 * (each a parent selection), and the scheduler's CPU per call and peak RSS.
 * Each case runs in a fresh scheduler process, so its VmHWM is its own.
 *
 * Alone: `node --import tsx bench/scheduler.ts` (needs dist/kiln.mjs); `--shards` for the
 * rows of 1, 2 and 3 schedulers per cluster (schedulerShardsPhase).
 */
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { SchedulerClient } from "../src/api/scheduler-client.js";
import { rendezvousOwner } from "../src/common/rendezvous.js";
import { taskIdFor } from "../src/common/task-id.js";
import type { HostAnnounce, PieceInfo } from "../src/api/scheduler.js";
import { spawnKiln } from "../test/helpers/proc.js";
import { processCpu } from "./cpu.js";
import { adopt, cleanupAll, killAllNow, log, onCleanup } from "./procs.js";
import { toText, type Table } from "./table.js";

const MiB = 1024 * 1024;
const HOSTS = 10_000;
const PIECES = 64;
const PIECE_LENGTH = 4 * MiB;
/** Requests in flight from the load generator. */
const CONCURRENCY = 32;
/** Registrations measured once the swarm is at full size. */
const MEASURED_REGISTRATIONS = 2_000;
const MEASURED_SCHEDULES = 10_000;

interface Case {
  label: string;
  tasks: number;
  peersPerTask: number;
}

const CASES: Case[] = [
  { label: "1 task × 1,000 peers", tasks: 1, peersPerTask: 1_000 },
  { label: "1 task × 10,000 peers", tasks: 1, peersPerTask: 10_000 },
  { label: "100 tasks × 100 peers", tasks: 100, peersPerTask: 100 },
];

interface Measured {
  ops: number;
  ms: number;
  /** Scheduler CPU seconds spent meanwhile. */
  cpu: number;
}

interface CaseResult {
  c: Case;
  announce: Measured;
  buildUp: Measured;
  register: Measured;
  schedule: Measured;
  parentsPerReply: number;
  rssMiB: number;
}

/** Deterministic pseudo-random numbers, so every run (before and after a change) does the same work. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hostInfo(i: number, random: () => number): HostAnnounce {
  return {
    id: `bench-host-${i}`,
    hostname: `node-${i}`,
    ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    uploadPort: 4000,
    isSeed: false,
    location: `zone-${i % 8}`,
    idc: `idc-${i % 4}`,
    uploadSlots: 32,
    freeUploadSlots: Math.floor(random() * 33),
    controlToken: createHash("sha256").update(`token-${i}`).digest("base64url"),
    labels: {},
    version: "",
  };
}

function pieceOf(task: number, n: number): PieceInfo {
  return { number: n, digest: `sha256:${createHash("sha256").update(`${task}-${n}`).digest("hex")}`, length: PIECE_LENGTH };
}

/** Runs `n` operations, `CONCURRENCY` at a time; wall time and the scheduler's CPU meanwhile. */
async function measure(pid: number | undefined, n: number, op: (i: number) => Promise<void>): Promise<Measured> {
  let next = 0;
  const cpu0 = processCpu(pid);
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
  return { ops: n, ms: performance.now() - t0, cpu: processCpu(pid) - cpu0 };
}

function peakRssMiB(pid: number | undefined): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function runCase(c: Case): Promise<CaseResult> {
  log(`scheduler: ${c.label}, ${HOSTS.toLocaleString("en")} hosts`);
  const proc = await spawnKiln(["scheduler", "--host", "127.0.0.1", "--port", "0", "--host-timeout-ms", String(3_600_000)]);
  adopt(proc.proc);
  const unregister = onCleanup(() => proc.kill());
  try {
    const pid = proc.proc.pid;
    const client = new SchedulerClient(String(proc.ready.url));
    const random = prng(42);
    const hosts = Array.from({ length: HOSTS }, (_, i) => hostInfo(i, random));
    const announce = await measure(pid, HOSTS, async (i) => void (await client.announceHost(hosts[i]!)));

    const urls = Array.from({ length: c.tasks }, (_, t) => `http://origin.bench/${c.tasks}x${c.peersPerTask}/file-${t}.bin`);
    const taskIds: string[] = [];
    // Each task's origin fetcher: the first peer registered, it reports the layout and every piece.
    for (let t = 0; t < c.tasks; t++) {
      const r = await client.registerPeer({ peerId: `src-${t}`, hostId: hosts[t % HOSTS]!.id, download: { url: urls[t]! } });
      if (r.action !== "back_to_source") throw new Error(`task ${t}: the first peer was told to ${r.action}`);
      taskIds.push(r.taskId);
      const pieces = Array.from({ length: PIECES }, (_, n) => pieceOf(t, n));
      await client.reportPieces(r.taskId, `src-${t}`, { contentLength: PIECES * PIECE_LENGTH, pieceLength: PIECE_LENGTH, pieces });
    }

    // Peer k of the swarm joins task k % tasks, on host k % HOSTS (after the origin fetchers' hosts).
    const peers: { task: number; id: string; version: number }[] = [];
    const register = async (k: number) => {
      const task = k % c.tasks;
      const id = `peer-${k}`;
      const r = await client.registerPeer({ peerId: id, hostId: hosts[(c.tasks + k) % HOSTS]!.id, download: { url: urls[task]! } });
      peers.push({ task, id, version: r.version });
    };
    const swarmPeers = c.tasks * (c.peersPerTask - 1);
    const buildUp = await measure(pid, swarmPeers, register);
    // Half of the peers hold half of the pieces, so parents differ in what they can serve.
    await measure(pid, peers.length, async (i) => {
      if (i % 2) return;
      const p = peers[i]!;
      const pieces = Array.from({ length: PIECES }, (_, n) => n)
        .filter(() => random() < 0.5)
        .map((n) => pieceOf(p.task, n));
      await client.reportPieces(taskIds[p.task]!, p.id, { pieces });
    });

    let parents = 0;
    const schedule = await measure(pid, MEASURED_SCHEDULES, async (i) => {
      const p = peers[(i * 7919) % peers.length]!;
      const r = await client.schedule(taskIds[p.task]!, p.id, { since: p.version, waitMs: 0 });
      parents += r.parents.length;
      p.version = r.version;
    });
    const registerFull = await measure(pid, MEASURED_REGISTRATIONS, (i) => register(swarmPeers + i));
    return { c, announce, buildUp, register: registerFull, schedule, parentsPerReply: parents / MEASURED_SCHEDULES, rssMiB: peakRssMiB(pid) };
  } finally {
    unregister();
    await proc.kill();
  }
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "—");
const perSecond = (m: Measured) => fmt((m.ops * 1000) / m.ms);
const cpuMsPerOp = (m: Measured) => fmt((m.cpu * 1000) / m.ops, 3);

export async function schedulerPhase(): Promise<Table[]> {
  const results: CaseResult[] = [];
  for (const c of CASES) results.push(await runCase(c));
  const shards = await schedulerShardsPhase();
  return [
    ...shards,
    {
      title: `Scheduler: ${HOSTS.toLocaleString("en")} announced hosts, ${PIECES} pieces per task, ${CONCURRENCY} requests in flight over HTTP`,
      headers: [
        "case",
        "host announces/s",
        "registrations/s (swarm growing)",
        "registrations/s (full swarm)",
        "schedule calls/s",
        "parents per reply",
        "scheduler CPU ms / registration",
        "scheduler CPU ms / schedule",
        "scheduler peak RSS (MiB)",
      ],
      numeric: [false, true, true, true, true, true, true, true, true],
      rows: results.map((r) => [
        r.c.label,
        perSecond(r.announce),
        perSecond(r.buildUp),
        perSecond(r.register),
        perSecond(r.schedule),
        fmt(r.parentsPerReply, 1),
        cpuMsPerOp(r.register),
        cpuMsPerOp(r.schedule),
        fmt(r.rssMiB),
      ]),
      notes: [
        "a registration is answered with the task's piece digests and its parents;" +
          " a schedule call with parents and the digests new since the peer's last answer.",
        `full swarm: ${MEASURED_REGISTRATIONS.toLocaleString("en")} more peers register after the swarm was built;` +
          ` schedule: ${MEASURED_SCHEDULES.toLocaleString("en")} calls from peers across the swarm, no long poll.`,
        "the load generator (this process, the real SchedulerClient validating every reply) shares the machine's cores with the scheduler;" +
          " CPU ms per call is the scheduler's own, from /proc.",
        "peak RSS: VmHWM of the scheduler process, a fresh one per case.",
      ],
    },
  ];
}

/** Schedulers of one cluster measured together: 1, 2, 3. */
const SHARDS = [1, 2, 3];
/** The sharded case: 100 tasks × 100 peers spread over the schedulers. */
const SHARD_CASE: Case = { label: "100 tasks × 100 peers", tasks: 100, peersPerTask: 100 };

interface ShardResult {
  n: number;
  register: Measured;
  tasksPer: number[];
  /** Each scheduler's CPU seconds over the measured registrations. */
  cpuPer: number[];
  registrationsPer: number[];
}

/**
 * N schedulers of one cluster, as kiln's peers use them: every host announced to
 * every scheduler, each task registered with the scheduler its ID ranks first
 * (common/rendezvous.ts over their URLs, as peer/scheduler-ring.ts does).
 */
async function runShards(n: number): Promise<ShardResult> {
  const c = SHARD_CASE;
  log(`scheduler: ${n} scheduler(s), ${c.label}, ${HOSTS.toLocaleString("en")} hosts announced to each`);
  const procs = [];
  const unregister: (() => void)[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const proc = await spawnKiln(["scheduler", "--host", "127.0.0.1", "--port", "0", "--host-timeout-ms", String(3_600_000)]);
      adopt(proc.proc);
      unregister.push(onCleanup(() => proc.kill()));
      procs.push(proc);
    }
    const urls = procs.map((p) => String(p.ready.url));
    const clients = new Map(urls.map((u) => [u, new SchedulerClient(u)]));
    const pids = procs.map((p) => p.proc.pid);
    const random = prng(42);
    const hosts = Array.from({ length: HOSTS }, (_, i) => hostInfo(i, random));
    for (const client of clients.values()) await measure(pids[0], HOSTS, async (i) => void (await client.announceHost(hosts[i]!)));
    const taskUrls = Array.from({ length: c.tasks }, (_, t) => `http://origin.bench/shards/file-${t}.bin`);
    const ownerOf = (t: number) => clients.get(rendezvousOwner(taskIdFor({ url: taskUrls[t]! }), urls)!)!;
    for (let t = 0; t < c.tasks; t++) {
      const client = ownerOf(t);
      const r = await client.registerPeer({ peerId: `src-${t}`, hostId: hosts[t % HOSTS]!.id, download: { url: taskUrls[t]! } });
      const pieces = Array.from({ length: PIECES }, (_, k) => pieceOf(t, k));
      await client.reportPieces(r.taskId, `src-${t}`, { contentLength: PIECES * PIECE_LENGTH, pieceLength: PIECE_LENGTH, pieces });
    }
    const registrationsPer = new Map(urls.map((u) => [u, 0]));
    const register = async (k: number) => {
      const task = k % c.tasks;
      const client = ownerOf(task);
      await client.registerPeer({ peerId: `peer-${k}`, hostId: hosts[(c.tasks + k) % HOSTS]!.id, download: { url: taskUrls[task]! } });
      return client.baseUrl;
    };
    const swarmPeers = c.tasks * (c.peersPerTask - 1);
    await measure(pids[0], swarmPeers, async (k) => void (await register(k)));
    const cpu0 = pids.map((p) => processCpu(p));
    const registerFull = await measure(pids[0], MEASURED_REGISTRATIONS, async (i) => {
      const url = await register(swarmPeers + i);
      registrationsPer.set(url, (registrationsPer.get(url) ?? 0) + 1);
    });
    const cpuPer = pids.map((p, i) => processCpu(p) - cpu0[i]!);
    const tasksPer = await Promise.all([...clients.values()].map(async (cl) => (await cl.stats()).tasks));
    return {
      n,
      register: { ...registerFull, cpu: cpuPer.reduce((a, b) => a + b, 0) },
      tasksPer,
      cpuPer,
      registrationsPer: urls.map((u) => registrationsPer.get(u) ?? 0),
    };
  } finally {
    for (const u of unregister) u();
    await Promise.all(procs.map((p) => p.kill()));
  }
}

/** Registrations per second and CPU per registration with 1, 2 and 3 schedulers in the cluster. */
export async function schedulerShardsPhase(): Promise<Table[]> {
  const results: ShardResult[] = [];
  for (const n of SHARDS) results.push(await runShards(n));
  return [
    {
      title: `Schedulers per cluster: ${SHARD_CASE.label}, ${HOSTS.toLocaleString("en")} hosts announced to every scheduler, tasks by rendezvous hashing, ${CONCURRENCY} requests in flight`,
      headers: [
        "schedulers",
        "tasks per scheduler",
        "registrations/s (full swarm, all schedulers)",
        "scheduler CPU ms / registration",
        "busiest scheduler's CPU ms / its registration",
      ],
      numeric: [true, false, true, true, true],
      rows: results.map((r) => {
        const busiest = r.cpuPer.map((cpu, i) => (cpu * 1000) / Math.max(1, r.registrationsPer[i]!));
        return [String(r.n), r.tasksPer.join(" / "), perSecond(r.register), cpuMsPerOp(r.register), fmt(Math.max(...busiest), 3)];
      }),
      notes: [
        `${MEASURED_REGISTRATIONS.toLocaleString("en")} registrations into the full swarm, each sent to its task's scheduler as a peer would;` +
          " CPU summed over the schedulers, from /proc.",
        "one load generator (this process) and every scheduler share the machine's cores: the aggregate rate is bounded by them, not by N.",
      ],
    },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.on("exit", killAllNow);
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanupAll().finally(() => process.exit(130)));
  (process.argv.includes("--shards") ? schedulerShardsPhase() : schedulerPhase())
    .then((tables) => process.stdout.write(`${tables.map(toText).join("\n\n")}\n`))
    .catch((err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    })
    .finally(() => cleanupAll());
}
