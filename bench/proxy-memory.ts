/**
 * One peer's proxy under many concurrent clients: its
 * peak resident set (VmHWM) and open file descriptors while N clients download
 * through it, and whether every byte was right and the origin was hit once.
 * Not part of `npm run bench`:
 *
 *   node scripts/build.mjs && node --import tsx bench/proxy-memory.ts
 *
 * Scenarios, each on a fresh peer of one cluster (scheduler + seed peer), its peak
 * reset (/proc/<pid>/clear_refs) once the scenario's set-up is done:
 * - cold, fast: N clients ask for one file at once and read as fast as they can;
 *   the task downloads while they read (pieces streamed in order).
 * - warm, slow: the file is already complete on the peer; N clients read at a slow
 *   rate for a while, then hang up (the stored-file path).
 * - cold, slow: N slow clients join a download in progress (origin capped), read
 *   for a while, then hang up (the streaming path, held back by slow readers).
 * - tasks: many tiny distinct tasks through one peer, one after the other (a few at
 *   a time); the resident set of the peer, seed peer and scheduler before, after and
 *   after a quiet spell (bench/task-memory.ts): what each keeps per task.
 *
 * Env: BENCH_SCENARIOS (cold-fast,warm-slow,cold-slow,tasks), BENCH_CLIENTS (200), BENCH_FAST_MIB (10), BENCH_SLOW_MIB (200),
 * BENCH_SLOW_CLIENT_KIB (256: KiB/s per slow client), BENCH_SLOW_SECONDS (15),
 * BENCH_SLOW_ORIGIN_MIB (20: MiB/s cap of the origin in the cold, slow scenario);
 * tasks: BENCH_TASKS (20000), BENCH_TASK_WARMUP (2000), BENCH_TASK_BYTES (1024), BENCH_TASK_CLIENTS (16), BENCH_IDLE_SECONDS (30),
 * BENCH_RESIDENT_TASKS (given to every peer as --resident-tasks; unset: the peer's default).
 * Prints tables to stdout and writes bench/results/proxy-memory.md (clients) and
 * bench/results/proxy-memory-tasks.md (tasks).
 */
import http from "node:http";
import { createHash } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { fdCensus } from "../test/helpers/fds.js";
import { startCluster, type BenchPeer, type Cluster } from "./cluster.js";
import { cleanupAll, log, startBenchOrigin, trackTempDir, type BenchOrigin } from "./procs.js";
import { toMarkdown, toText, type Table } from "./table.js";
import { manyTasks } from "./task-memory.js";
import { MiB, fmt, makePayload } from "./util.js";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 200);
const FAST_MIB = Number(process.env.BENCH_FAST_MIB ?? 10);
const SLOW_MIB = Number(process.env.BENCH_SLOW_MIB ?? 200);
const SLOW_CLIENT_BYTES = Number(process.env.BENCH_SLOW_CLIENT_KIB ?? 256) * 1024;
const SLOW_SECONDS = Number(process.env.BENCH_SLOW_SECONDS ?? 15);
const SLOW_ORIGIN_BYTES = Number(process.env.BENCH_SLOW_ORIGIN_MIB ?? 20) * MiB;

const TASKS = Number(process.env.BENCH_TASKS ?? 20_000);
const TASK_WARMUP = Number(process.env.BENCH_TASK_WARMUP ?? 2_000);
const TASK_BYTES = Number(process.env.BENCH_TASK_BYTES ?? 1024);
const TASK_CLIENTS = Number(process.env.BENCH_TASK_CLIENTS ?? 16);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
const RESIDENT_TASKS = process.env.BENCH_RESIDENT_TASKS;

const SCENARIO_KEYS = ["cold-fast", "warm-slow", "cold-slow", "tasks"] as const;
type ScenarioKey = (typeof SCENARIO_KEYS)[number];
const SCENARIOS = (process.env.BENCH_SCENARIOS?.split(",") ?? SCENARIO_KEYS).map((k) => {
  if (!(SCENARIO_KEYS as readonly string[]).includes(k)) throw new Error(`BENCH_SCENARIOS: unknown ${JSON.stringify(k)}; use ${SCENARIO_KEYS.join(",")}`);
  return k as ScenarioKey;
});

function procStatus(pid: number, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Polls (every 500 ms) for the descriptors to fall back after a scenario. */
const FD_SETTLE_TRIES = 60;

/** Makes VmHWM start again from the current resident set. */
const resetPeak = (pid: number): Promise<void> => writeFile(`/proc/${pid}/clear_refs`, "5");

interface ClientResult {
  status: number;
  bytes: number;
  sha256: string;
  /** Read to the end (not hung up by the bench, no error). */
  complete: boolean;
  error?: string;
}

/**
 * One proxy client for `url` through `peer`: reads at most `bytesPerSec` (0: as fast as
 * it can) and hangs up after `hangUpMs` (0: never), like a slow or impatient client.
 */
function proxyClient(peer: BenchPeer, url: string, bytesPerSec: number, hangUpMs: number): Promise<ClientResult> {
  const proxy = new URL(peer.proxyUrl);
  return new Promise((resolve) => {
    const hash = createHash("sha256");
    let bytes = 0;
    let status = 0;
    let done = false;
    const t0 = Date.now();
    const finish = (complete: boolean, error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(hangUp);
      resolve({ status, bytes, sha256: hash.digest("hex"), complete, ...(error ? { error } : {}) });
    };
    const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { "x-dragonfly-use-p2p": "true" }, agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        if (!bytesPerSec) return;
        const ahead = (bytes / bytesPerSec) * 1000 - (Date.now() - t0);
        if (ahead <= 0) return;
        res.pause();
        setTimeout(() => res.resume(), ahead);
      });
      res.once("end", () => finish(res.complete));
      res.once("error", (err) => finish(false, err.message));
    });
    const hangUp = hangUpMs ? setTimeout(() => (finish(false), req.destroy()), hangUpMs) : undefined;
    req.once("error", (err) => finish(false, err.message));
    req.end();
  });
}

interface Row {
  scenario: string;
  fileMiB: number;
  rssBefore: number;
  peak: number;
  fdsBefore: number;
  fdsPeak: number;
  fdsAfter: number;
  right: number;
  complete: number;
  originRatio: number;
  /** From the first request to the last client done. */
  seconds: number;
}

interface Scenario {
  name: string;
  peer: BenchPeer;
  origin: BenchOrigin;
  fileMiB: number;
  sha256: string;
  /** Before the peak is reset (e.g. making the file warm on the peer). */
  setUp?: () => Promise<void>;
  load: () => Promise<ClientResult[]>;
}

/** Runs one scenario; `fds` counts the peer's descriptors as a leak check sees them. */
async function run(s: Scenario, fds: (peer: BenchPeer) => number): Promise<Row> {
  const pid = s.peer.proc.pid!;
  await s.setUp?.();
  const sentBefore = (await s.origin.stats()).sentBytes;
  await resetPeak(pid);
  const rssBefore = procStatus(pid, "VmRSS");
  const fdsBefore = fds(s.peer);
  log(`${s.name}: ${CLIENTS} clients, peer RSS ${fmt(rssBefore / MiB)} MiB, ${fdsBefore} fds`);
  const t0 = Date.now();
  let fdsPeak = fdsBefore;
  const sampler = setInterval(() => (fdsPeak = Math.max(fdsPeak, fds(s.peer))), 250);
  const results = await s.load();
  clearInterval(sampler);
  const seconds = (Date.now() - t0) / 1000;
  const peak = procStatus(pid, "VmHWM");
  for (let i = 0; i < FD_SETTLE_TRIES && fds(s.peer) > fdsBefore; i++) await sleep(500);
  const fdsAfter = fds(s.peer);
  const originRatio = ((await s.origin.stats()).sentBytes - sentBefore) / (s.fileMiB * MiB);
  const errors = results.filter((r) => r.error).map((r) => r.error);
  if (errors.length) log(`${s.name}: ${errors.length} client errors, e.g. ${errors[0]}`);
  log(`${s.name}: peak ${fmt(peak / MiB)} MiB, fds ${fdsBefore} → ${fdsPeak} → ${fdsAfter}`);
  return {
    scenario: s.name,
    fileMiB: s.fileMiB,
    rssBefore,
    peak,
    fdsBefore,
    fdsPeak,
    fdsAfter,
    right: results.filter((r) => r.status === 200 && (!r.complete || r.sha256 === s.sha256)).length,
    complete: results.filter((r) => r.complete).length,
    originRatio,
    seconds,
  };
}

const times = <T>(n: number, f: (i: number) => Promise<T>): Promise<T[]> => Promise.all(Array.from({ length: n }, (_, i) => f(i)));

async function main(): Promise<void> {
  const dir = await mkdtemp(join(os.tmpdir(), "kiln-bench-proxy-memory-"));
  trackTempDir(dir);
  const fastFile = join(dir, "fast.bin");
  const slowFile = join(dir, "slow.bin");
  const [fastSha, slowSha] = await Promise.all([makePayload(fastFile, FAST_MIB * MiB), makePayload(slowFile, SLOW_MIB * MiB)]);
  const fastOrigin = await startBenchOrigin(fastFile, 0);
  const slowOrigin = await startBenchOrigin(slowFile, 0);
  const cappedOrigin = await startBenchOrigin(slowFile, SLOW_ORIGIN_BYTES);
  const tinyFile = join(dir, "tiny.bin");
  const tinySha = await makePayload(tinyFile, TASK_BYTES);
  const tinyOrigin = await startBenchOrigin(tinyFile, 0);
  const cluster: Cluster = await startCluster(["cold-fast", "warm-slow", "cold-slow", "tasks"], RESIDENT_TASKS ? ["--resident-tasks", RESIDENT_TASKS] : []);
  const [coldFast, warmSlow, coldSlow, tasksPeer] = cluster.peers as [BenchPeer, BenchPeer, BenchPeer, BenchPeer];
  const keptAlive = [cluster.seed.ready.uploadPort as number, cluster.scheduler.ready.port as number];
  const fds = (peer: BenchPeer) => {
    const c = fdCensus(peer.proc.pid!, { listenPort: Number(new URL(peer.proxyUrl).port), remotePorts: keptAlive, dir: realpathSync(os.tmpdir()) });
    return c.total - c.outgoing;
  };
  const hangUpMs = SLOW_SECONDS * 1000;
  const scenarios: Record<Exclude<ScenarioKey, "tasks">, Scenario> = {
    "cold-fast": {
      name: "cold, fast clients",
      peer: coldFast,
      origin: fastOrigin,
      fileMiB: FAST_MIB,
      sha256: fastSha,
      load: () => times(CLIENTS, () => proxyClient(coldFast, `${fastOrigin.url}?scenario=cold-fast`, 0, 0)),
    },
    "warm-slow": {
      name: `warm, slow clients (${SLOW_CLIENT_BYTES / 1024} KiB/s, ${SLOW_SECONDS} s)`,
      peer: warmSlow,
      origin: slowOrigin,
      fileMiB: SLOW_MIB,
      sha256: slowSha,
      setUp: async () => {
        const r = await proxyClient(warmSlow, `${slowOrigin.url}?scenario=warm-slow`, 0, 0);
        if (r.sha256 !== slowSha) throw new Error(`warm-up download is wrong: ${r.error ?? `status ${r.status}, ${r.bytes} bytes`}`);
      },
      load: () => times(CLIENTS, () => proxyClient(warmSlow, `${slowOrigin.url}?scenario=warm-slow`, SLOW_CLIENT_BYTES, hangUpMs)),
    },
    "cold-slow": {
      name: `cold, slow clients (origin ${SLOW_ORIGIN_BYTES / MiB} MiB/s)`,
      peer: coldSlow,
      origin: cappedOrigin,
      fileMiB: SLOW_MIB,
      sha256: slowSha,
      load: () => times(CLIENTS, () => proxyClient(coldSlow, `${cappedOrigin.url}?scenario=cold-slow`, SLOW_CLIENT_BYTES, hangUpMs)),
    },
  };
  const rows: Row[] = [];
  let tasksTable: Table | undefined;
  for (const key of SCENARIOS) {
    if (key !== "tasks") rows.push(await run(scenarios[key], fds));
    else {
      const load = {
        tasks: TASKS,
        warmup: TASK_WARMUP,
        taskBytes: TASK_BYTES,
        clients: TASK_CLIENTS,
        idleSeconds: IDLE_SECONDS,
        resident: RESIDENT_TASKS ?? "default",
      };
      tasksTable = await manyTasks(tasksPeer, cluster.seed, cluster.scheduler, tinyOrigin, tinySha, load);
    }
  }
  const results = fileURLToPath(new URL("./results/", import.meta.url));
  await mkdir(results, { recursive: true });
  if (tasksTable) {
    process.stdout.write(`${toText(tasksTable)}\n`);
    await writeFile(join(results, "proxy-memory-tasks.md"), `${toMarkdown(tasksTable)}\n`);
  }
  if (!rows.length) return;

  const table: Table = {
    title: `Peer proxy under ${CLIENTS} concurrent clients: peak RSS and file descriptors`,
    headers: ["scenario", "file MiB", "RSS before MiB", "peak RSS MiB", "per client MiB", "fds before/peak/after", "right", "complete", "origin ÷ size", "s"],
    numeric: [false, true, true, true, true, false, true, true, true, true],
    rows: rows.map((r) => [
      r.scenario,
      String(r.fileMiB),
      fmt(r.rssBefore / MiB, 0),
      fmt(r.peak / MiB, 0),
      fmt((r.peak - r.rssBefore) / MiB / CLIENTS, 2),
      `${r.fdsBefore}/${r.fdsPeak}/${r.fdsAfter}`,
      `${r.right}/${CLIENTS}`,
      `${r.complete}/${CLIENTS}`,
      fmt(r.originRatio, 2),
      fmt(r.seconds, 1),
    ]),
    notes: [
      "peak RSS: the peer's VmHWM over the scenario (reset after its set-up); goal ≤ 256 MiB under 200 clients",
      "right: a 200 whose bytes match the file's sha256 (a slow client's hung-up body is not checked); complete: read to the end",
      "fds: open descriptors less the keep-alive connections to the seed peer and the scheduler (client pools those servers close when idle)",
      `fds after: once the clients are gone (waited up to 30 s for the count to fall back); machine: ${os.cpus().length} cores, load ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    ],
  };
  process.stdout.write(`${toText(table)}\n`);
  await writeFile(join(results, "proxy-memory.md"), `${toMarkdown(table)}\n`);
}

process.on("SIGINT", () => void cleanupAll().finally(() => process.exit(130)));
try {
  await main();
} finally {
  await cleanupAll();
}
