/**
 * `npm run bench`: kiln against the direct path, in the same run.
 *
 * 1. Swarm: N peers (+1 seed peer, 1 scheduler) pull one file at once from an
 *    origin capped at a fixed TOTAL bandwidth; then N plain HTTP downloads from
 *    the same origin. Origin bytes ÷ file size, completion time, per-client MB/s.
 * 2. Single peer, unlimited local origin: a direct download, `kiln get` through a
 *    peer whose seed goes to the origin (cold), and through a second fresh peer
 *    that finds the content in the swarm (warm).
 *
 * 3. Image pull: skopeo copies an image directly from docker-registry, then through
 *    a peer as its mirror, cold and warm (bench/image-pull.ts).
 *
 * Env: BENCH_PEERS (8), BENCH_SIZE_MIB (512), BENCH_ORIGIN_MBPS (50, MB = 10^6 B),
 * BENCH_IMAGE_MIB (256), BENCH_QUICK=1 (4 peers, 64 MiB file and image unless set explicitly).
 * Tables go to stdout and to bench/results/latest.md; progress goes to stderr.
 * Needs dist/kiln.mjs (`npm run bench` builds it; otherwise `node scripts/build.mjs`).
 */
import http from "node:http";
import os from "node:os";
import { execSync, spawn } from "node:child_process";
import { createHash, randomFill } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { TestCluster, metric, type PeerHandle } from "../test/helpers/cluster.js";
import { KILN_BIN } from "../test/helpers/proc.js";
import {
  adopt,
  cleanupAll,
  killAllNow,
  kilnGet,
  log,
  onCleanup,
  removeTempDirsNow,
  startBenchOrigin,
  trackTempDir,
  type BenchOrigin,
  type GetResult,
} from "./procs.js";
import { toMarkdown, toText, type Table } from "./table.js";
import { startCluster } from "./cluster.js";
import { imagePullPhase } from "./image-pull.js";
import { cpuCount, machineCpu, processCpu, reapedChildrenCpu, selfCpu, type MachineCpu } from "./cpu.js";

const MiB = 1024 * 1024;
const MB = 1e6;

interface Config {
  quick: boolean;
  peers: number;
  sizeMiB: number;
  originMBps: number;
  imageMiB: number;
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

function config(): Config {
  const quick = ["1", "true", "yes"].includes((process.env.BENCH_QUICK ?? "").toLowerCase());
  return {
    quick,
    peers: Math.round(envNumber("BENCH_PEERS", quick ? 4 : 8)),
    sizeMiB: envNumber("BENCH_SIZE_MIB", quick ? 64 : 512),
    originMBps: envNumber("BENCH_ORIGIN_MBPS", 50),
    imageMiB: envNumber("BENCH_IMAGE_MIB", quick ? 64 : 256),
  };
}

// ---------------------------------------------------------------- helpers

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "—");
const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000);

async function makePayload(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  const fill = (b: Buffer) => new Promise<Buffer>((resolve, reject) => randomFill(b, (err, buf) => (err ? reject(err) : resolve(buf))));
  const chunk = 4 * MiB;
  for (let off = 0; off < size; off += chunk) {
    const buf = await fill(Buffer.allocUnsafe(Math.min(chunk, size - off)));
    hash.update(buf);
    if (!out.write(buf)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest("hex");
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return h.digest("hex");
}

interface DirectResult {
  ok: boolean;
  bytes: number;
  sha256: string;
  error?: string;
  startedAt: number;
  endedAt: number;
}

/** A plain HTTP GET: the body is hashed and counted, then discarded. */
function directDownload(url: string, onBytes: (n: number) => void, timeoutMs: number): Promise<DirectResult> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const hash = createHash("sha256");
    let bytes = 0;
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok: !error, bytes, sha256: hash.digest("hex"), error, startedAt, endedAt: performance.now() });
    };
    const req = http.get(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return finish(`HTTP ${res.statusCode}`);
      }
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        onBytes(c.length);
      });
      res.once("end", () => finish());
      res.once("error", (e) => finish(e.message));
      res.once("aborted", () => finish("aborted"));
    });
    req.once("error", (e) => finish(e.message));
    const timer = setTimeout(() => {
      req.destroy();
      finish(`timed out after ${timeoutMs} ms`);
    }, timeoutMs);
  });
}

async function peerBytes(p: PeerHandle): Promise<{ p2p: number; origin: number; uploaded: number }> {
  const [p2p, origin, uploaded] = await Promise.all([
    metric(p.metricsUrl, "kiln_peer_download_bytes_total", { source: "p2p" }),
    metric(p.metricsUrl, "kiln_peer_download_bytes_total", { source: "origin" }),
    metric(p.metricsUrl, "kiln_peer_upload_bytes_total"),
  ]);
  return { p2p, origin, uploaded };
}

/** CPU seconds per component over one measured run. */
interface CpuSnapshot {
  machine: MachineCpu;
  reaped: number;
  self: number;
  procs: Map<string, number>;
}

function cpuSnapshot(procs: Record<string, number | undefined>): CpuSnapshot {
  const m = new Map<string, number>();
  for (const [name, pid] of Object.entries(procs)) m.set(name, processCpu(pid));
  return { machine: machineCpu(), reaped: reapedChildrenCpu(), self: selfCpu(), procs: m };
}

interface CpuUse {
  wallS: number;
  machineBusy: number;
  machineTotal: number;
  seed: number;
  peers: number;
  peerMax: number;
  gets: number;
  scheduler: number;
  origin: number;
  bench: number;
}

function cpuUse(a: CpuSnapshot, b: CpuSnapshot, wallMs: number): CpuUse {
  const d = (name: string) => (b.procs.get(name) ?? NaN) - (a.procs.get(name) ?? NaN);
  const peerNames = [...a.procs.keys()].filter((n) => n.startsWith("peer:"));
  const peerCpu = peerNames.map(d);
  return {
    wallS: wallMs / 1000,
    machineBusy: b.machine.busy - a.machine.busy,
    machineTotal: b.machine.total - a.machine.total,
    seed: a.procs.has("seed") ? d("seed") : NaN,
    peers: peerNames.length ? peerCpu.reduce((x, y) => x + y, 0) : NaN,
    peerMax: peerNames.length ? Math.max(...peerCpu) : NaN,
    gets: b.reaped - a.reaped,
    scheduler: a.procs.has("scheduler") ? d("scheduler") : NaN,
    origin: d("origin"),
    bench: b.self - a.self,
  };
}

/** Verifies and deletes each output right away; returns how many matched. */
async function verifyOutputs(results: { out: string; r: GetResult }[], sha: string, failures: string[], label: string): Promise<number> {
  let good = 0;
  for (const { out, r } of results) {
    if (r.code !== 0) {
      failures.push(`${label}: kiln get exited ${r.code}: ${r.stderr.split("\n").slice(-3).join(" | ")}`);
      await rm(out, { force: true });
      continue;
    }
    if (!existsSync(out)) {
      failures.push(`${label}: kiln get exited 0 but ${out} is missing`);
      continue;
    }
    const got = await fileSha256(out);
    await rm(out, { force: true });
    if (got === sha) good++;
    else failures.push(`${label}: ${out} has sha256 ${got}, expected ${sha}`);
  }
  return good;
}

function ticker(everyMs: number, line: () => Promise<string> | string): () => void {
  const t = setInterval(() => {
    Promise.resolve(line()).then(log, () => undefined);
  }, everyMs);
  return () => clearInterval(t);
}

// ---------------------------------------------------------------- phases

interface SwarmRow {
  path: string;
  originRatio: number;
  completionMs: number;
  meanClientMBps: number;
  minClientMBps: number;
  maxClientMBps: number;
  verified: string;
  extra: string;
}

async function swarmPhase(cfg: Config, tmp: string, file: string, size: number, sha: string, failures: string[]) {
  const rate = cfg.originMBps * MB;
  const getTimeout = Math.max(120_000, ((3 * cfg.peers * size) / rate) * 1000);
  log(`phase 1/3: swarm — origin capped at ${cfg.originMBps} MB/s total`);
  const origin = await startBenchOrigin(file, rate);
  const unregisterOrigin = onCleanup(() => origin.close());
  const rows: SwarmRow[] = [];
  const notes: string[] = [];

  // kiln
  log(`starting scheduler, seed peer and ${cfg.peers} peers`);
  const names = Array.from({ length: cfg.peers }, (_, i) => `peer-${i + 1}`);
  const swarmCluster = await startCluster(names);
  const { seed, peers } = swarmCluster;
  log(`kiln: ${cfg.peers} × kiln get of ${cfg.sizeMiB} MiB at once`);
  const before = await origin.stats();
  const cpuProcs: Record<string, number | undefined> = {
    origin: origin.pid,
    scheduler: swarmCluster.cluster.scheduler.proc.pid,
    seed: seed.proc.proc.pid,
  };
  for (const p of peers) cpuProcs[`peer:${p.name}`] = p.proc.proc.pid;
  const kilnCpu0 = cpuSnapshot(cpuProcs);
  let done = 0;
  const stopTick = ticker(5_000, async () => {
    const s = await origin.stats();
    return `  kiln: ${done}/${cfg.peers} done, origin sent ${fmt((s.sentBytes - before.sentBytes) / size, 2)} × file`;
  });
  const t0 = performance.now();
  const kilnResults = await Promise.all(
    peers.map(async (p) => {
      const out = join(tmp, `${p.name}.out`);
      const r = await kilnGet(p.proxyUrl, origin.url, out, getTimeout);
      done++;
      return { out, r, peer: p };
    }),
  );
  stopTick();
  const t1 = Math.max(...kilnResults.map((x) => x.r.endedAt));
  const kilnCpu = cpuUse(kilnCpu0, cpuSnapshot(cpuProcs), t1 - t0);
  const after = await origin.stats();
  const bytesPerPeer = await Promise.all(peers.map(peerBytes));
  const seedBytes = await peerBytes(seed);
  log(`kiln: swarm done in ${fmt((t1 - t0) / 1000)} s; verifying ${cfg.peers} outputs (sha256, then delete)`);
  await swarmCluster.stop();
  const good = await verifyOutputs(kilnResults, sha, failures, "swarm kiln");
  const kilnClient = kilnResults.map((x) => mbps(size, x.r.endedAt - x.r.startedAt));
  const p2pTotal = bytesPerPeer.reduce((a, b) => a + b.p2p, 0);
  const peerOrigin = bytesPerPeer.reduce((a, b) => a + b.origin, 0);
  rows.push({
    path: "kiln",
    originRatio: (after.sentBytes - before.sentBytes) / size,
    completionMs: t1 - t0,
    meanClientMBps: mean(kilnClient),
    minClientMBps: Math.min(...kilnClient),
    maxClientMBps: Math.max(...kilnClient),
    verified: `${good}/${cfg.peers}`,
    extra: `peers got ${fmt((100 * p2pTotal) / (cfg.peers * size))}% from p2p`,
  });
  notes.push(
    `kiln: seed peer fetched ${fmt(seedBytes.origin / size, 2)} × file from the origin; peers fetched ${fmt(peerOrigin / size, 2)} × file from the origin and ${fmt(p2pTotal / size, 2)} × file from parents; origin saw ${after.requests - before.requests} requests (${after.rangeRequests - before.rangeRequests} with Range).`,
  );
  const peerUp = bytesPerPeer.reduce((a, b) => a + b.uploaded, 0);
  notes.push(
    `kiln upload fan-out: the seed peer served ${fmt(seedBytes.uploaded / size, 2)} × file, the ${cfg.peers} peers served each other ${fmt(peerUp / size, 2)} × file in total (max ${fmt(Math.max(...bytesPerPeer.map((b) => b.uploaded)) / size, 2)} × from one peer).`,
  );
  const slowest = kilnResults.reduce((a, b) => (b.r.endedAt - b.r.startedAt > a.r.endedAt - a.r.startedAt ? b : a));
  notes.push(
    `kiln per-client times: ${kilnResults.map((x) => fmt((x.r.endedAt - x.r.startedAt) / 1000)).join(", ")} s (each is a \`kiln get\` process: spawn → file renamed after fsync); slowest ${slowest.peer.name}.`,
  );

  // direct
  log(`direct: ${cfg.peers} plain HTTP downloads at once from the same origin (~${fmt((cfg.peers * size) / rate, 0)} s at the cap)`);
  const dBefore = await origin.stats();
  const directCpu0 = cpuSnapshot({ origin: origin.pid });
  let received = 0;
  const stopTick2 = ticker(10_000, () => `  direct: ${fmt(received / (cfg.peers * size) * 100, 0)}% of ${cfg.peers} × file received`);
  const d0 = performance.now();
  const directResults = await Promise.all(names.map(() => directDownload(origin.url, (n) => (received += n), getTimeout)));
  stopTick2();
  const d1 = Math.max(...directResults.map((r) => r.endedAt));
  const directCpu = cpuUse(directCpu0, cpuSnapshot({ origin: origin.pid }), d1 - d0);
  const dAfter = await origin.stats();
  let dGood = 0;
  for (const [i, r] of directResults.entries()) {
    if (!r.ok) failures.push(`swarm direct #${i + 1}: ${r.error}`);
    else if (r.bytes !== size || r.sha256 !== sha) failures.push(`swarm direct #${i + 1}: ${r.bytes} bytes, sha256 ${r.sha256}`);
    else dGood++;
  }
  const directClient = directResults.map((r) => mbps(r.bytes, r.endedAt - r.startedAt));
  rows.push({
    path: "direct",
    originRatio: (dAfter.sentBytes - dBefore.sentBytes) / size,
    completionMs: d1 - d0,
    meanClientMBps: mean(directClient),
    minClientMBps: Math.min(...directClient),
    maxClientMBps: Math.max(...directClient),
    verified: `${dGood}/${cfg.peers}`,
    extra: "",
  });
  log(`direct: done in ${fmt((d1 - d0) / 1000)} s`);
  unregisterOrigin();
  await origin.close();
  notes.unshift(
    `Lower bounds at the cap: origin sends the file once → ${fmt(size / rate, 1)} s; ${cfg.peers} full copies → ${fmt((cfg.peers * size) / rate, 1)} s.`,
  );
  return { rows, notes, cpu: { kiln: kilnCpu, direct: directCpu } };
}

interface SingleRow {
  path: string;
  ms: number;
  bytes: number;
  originRatio: number;
  verified: boolean;
}

async function singlePhase(cfg: Config, tmp: string, file: string, size: number, sha: string, failures: string[]) {
  log("phase 2/3: single peer — unlimited local origin");
  const origin: BenchOrigin = await startBenchOrigin(file, 0);
  const unregisterOrigin = onCleanup(() => origin.close());
  const rows: SingleRow[] = [];
  const timeout = Math.max(120_000, (size / (10 * MB)) * 1000);

  log("direct: one plain HTTP download");
  let s0 = await origin.stats();
  const d = await directDownload(origin.url, () => undefined, timeout);
  let s1 = await origin.stats();
  const dOk = d.ok && d.bytes === size && d.sha256 === sha;
  if (!dOk) failures.push(`single direct: ${d.error ?? `${d.bytes} bytes, sha256 ${d.sha256}`}`);
  rows.push({ path: "direct (HTTP GET, body hashed + discarded)", ms: d.endedAt - d.startedAt, bytes: d.bytes, originRatio: (s1.sentBytes - s0.sentBytes) / size, verified: dOk });

  log("starting scheduler, seed peer and two peers");
  const singleCluster = await startCluster(["peer-a", "peer-b"]);
  const [a, b] = singleCluster.peers as [PeerHandle, PeerHandle];
  const runs: [string, PeerHandle][] = [
    ["kiln get, cold (seed → origin, peer ← seed)", a],
    ["kiln get, warm (fresh peer ← swarm)", b],
  ];
  for (const [label, peer] of runs) {
    log(label);
    const out = join(tmp, `single-${peer.name}.out`);
    s0 = await origin.stats();
    const r = await kilnGet(peer.proxyUrl, origin.url, out, timeout);
    s1 = await origin.stats();
    const good = await verifyOutputs([{ out, r }], sha, failures, `single ${label}`);
    rows.push({ path: label, ms: r.endedAt - r.startedAt, bytes: size, originRatio: (s1.sentBytes - s0.sentBytes) / size, verified: good === 1 });
    log(`  ${fmt(r.endedAt - r.startedAt, 0)} ms`);
  }
  unregisterOrigin();
  await origin.close();
  await singleCluster.stop();
  return { rows };
}

function cpuTableFor(kiln: CpuUse, direct: CpuUse, n: number): Table {
  const cell = (v: number, wall: number) => (Number.isFinite(v) ? `${fmt(v, 1)} s (${fmt((100 * v) / wall, 0)}%)` : "—");
  const row = (name: string, k: number, d: number): string[] => [name, cell(k, kiln.wallS), cell(d, direct.wallS)];
  const ours = (u: CpuUse) => [u.seed, u.peers, u.gets, u.scheduler, u.origin, u.bench].filter(Number.isFinite).reduce((a, b) => a + b, 0);
  const cores = cpuCount();
  return {
    title: "CPU time during the swarm runs (CPU seconds, and % of one core over the run's wall time)",
    headers: ["component", "kiln run", "direct run"],
    numeric: [false, true, true],
    rows: [
      [
        `whole machine (${cores} CPUs)`,
        `${fmt(kiln.machineBusy, 1)} s of ${fmt(kiln.machineTotal, 0)} (${fmt((100 * kiln.machineBusy) / kiln.machineTotal, 0)}% busy)`,
        `${fmt(direct.machineBusy, 1)} s of ${fmt(direct.machineTotal, 0)} (${fmt((100 * direct.machineBusy) / direct.machineTotal, 0)}% busy)`,
      ],
      row("seed peer", kiln.seed, direct.seed),
      row(`${n} peers (sum)`, kiln.peers, direct.peers),
      row("busiest peer", kiln.peerMax, direct.peerMax),
      row(`${n} \`kiln get\` processes (sum)`, kiln.gets, direct.gets),
      row("scheduler", kiln.scheduler, direct.scheduler),
      row("origin process", kiln.origin, direct.origin),
      row("bench process (direct clients)", kiln.bench, direct.bench),
      row("not ours (other work on the machine)", kiln.machineBusy - ours(kiln), direct.machineBusy - ours(direct)),
    ],
  };
}

/** Median wall time of `kiln get --help`: the fixed cost of starting one `kiln get` process. */
async function kilnGetStartupMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      const c = spawn(process.execPath, [KILN_BIN, "get", "--help"], { stdio: "ignore" });
      c.once("exit", () => resolve());
      c.once("error", () => resolve());
    });
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[1]!;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const cfg = config();
  if (!existsSync(KILN_BIN)) throw new Error(`${KILN_BIN} is missing: run \`node scripts/build.mjs\` (npm run bench does it)`);
  const size = Math.round(cfg.sizeMiB * MiB);
  const started = new Date();
  const loadAtStart = os.loadavg()[0]!;
  if (loadAtStart > 1.5) log(`warning: 1-minute load average is ${fmt(loadAtStart, 2)} on ${os.cpus().length} CPUs; other work on this machine will skew the figures`);
  log(`kiln bench${cfg.quick ? " (quick)" : ""}: ${cfg.peers} peers, ${cfg.sizeMiB} MiB, origin cap ${cfg.originMBps} MB/s`);
  const tmp = await mkdtemp(join(os.tmpdir(), "kiln-bench-"));
  trackTempDir(tmp);
  const file = join(tmp, "payload.bin");
  log(`writing a ${cfg.sizeMiB} MiB random payload to ${file}`);
  const sha = await makePayload(file, size);
  const failures: string[] = [];

  const startupMs = await kilnGetStartupMs();
  log(`starting one \`kiln get\` process costs ~${fmt(startupMs, 0)} ms (median of 3 × \`kiln get --help\`)`);
  const swarm = await swarmPhase(cfg, tmp, file, size, sha, failures);
  const single = await singlePhase(cfg, tmp, file, size, sha, failures);
  const imageTable = await imagePullPhase({ imageMiB: cfg.imageMiB, layers: 8, nodes: Math.min(cfg.peers, 4) }, tmp, failures);

  const swarmTable: Table = {
    title: `Swarm: ${cfg.peers} peers + 1 seed pull ${cfg.sizeMiB} MiB at once, origin capped at ${cfg.originMBps} MB/s total`,
    headers: ["path", "origin bytes ÷ size", "completion (s)", "mean per-client (MB/s)", "min–max per-client (MB/s)", "sha256 ok", "notes"],
    numeric: [false, true, true, true, true, true, false],
    rows: swarm.rows.map((r) => [
      r.path,
      fmt(r.originRatio, 2),
      fmt(r.completionMs / 1000, 1),
      fmt(r.meanClientMBps, 1),
      `${fmt(r.minClientMBps, 1)}–${fmt(r.maxClientMBps, 1)}`,
      r.verified,
      r.extra,
    ]),
    notes: swarm.notes,
  };
  const cpuTable = cpuTableFor(swarm.cpu.kiln, swarm.cpu.direct, cfg.peers);
  const singleTable: Table = {
    title: `Single peer: ${cfg.sizeMiB} MiB from an unlimited local origin`,
    headers: ["path", "time (s)", "throughput (MB/s)", "origin bytes ÷ size", "sha256 ok"],
    numeric: [false, true, true, true, true],
    rows: single.rows.map((r) => [r.path, fmt(r.ms / 1000, 2), fmt(mbps(r.bytes, r.ms), 0), fmt(r.originRatio, 2), r.verified ? "yes" : "NO"]),
    notes: [
      "direct = one HTTP GET in the bench process (sha256 while receiving, nothing written to disk).",
      "kiln = `kiln get` process wall time (spawn → output fsynced and renamed); the peer also stores its own copy.",
      `starting a \`kiln get\` process alone costs ~${fmt(startupMs / 1000, 2)} s (median of 3 × \`kiln get --help\`), included in every kiln time.`,
    ],
  };
  const text = [toText(swarmTable), "", toText(cpuTable), "", toText(singleTable), "", toText(imageTable)].join("\n");
  process.stdout.write(`\n${text}\n`);
  if (failures.length) {
    process.stdout.write(`\nFAILURES (${failures.length}):\n${failures.map((f) => `  - ${f}`).join("\n")}\n`);
  }

  const md = [
    `# kiln bench — ${cfg.quick ? "quick" : "default"} run`,
    "",
    `- date: ${started.toISOString()}`,
    `- commit: ${gitDescribe()}`,
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 1024 ** 3, 0)} GiB RAM, Node ${process.version}, ${os.platform()}`,
    `- parameters: BENCH_PEERS=${cfg.peers} BENCH_SIZE_MIB=${cfg.sizeMiB} BENCH_ORIGIN_MBPS=${cfg.originMBps} BENCH_IMAGE_MIB=${cfg.imageMiB} (MB = 10^6 bytes; the cap is one limiter shared by every origin connection)`,
    `- 1-minute load average: ${fmt(loadAtStart, 2)} at start, ${fmt(os.loadavg()[0]!, 2)} at end (the bench itself adds several busy processes)`,
    `- everything on loopback: scheduler, seed peer and peers are separate \`kiln\` processes; the origin is a separate Node process serving a file from disk`,
    "",
    toMarkdown(swarmTable),
    "",
    toMarkdown(cpuTable),
    "",
    toMarkdown(singleTable),
    "",
    toMarkdown(imageTable),
    "",
    failures.length ? `## Failures\n\n${failures.map((f) => `- ${f}`).join("\n")}\n` : "",
  ].join("\n");
  const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, "latest.md"), md);
  log(`tables written to bench/results/latest.md; total ${fmt((Date.now() - started.getTime()) / 1000, 0)} s`);
  return failures.length ? 1 : 0;
}

function gitDescribe(): string {
  try {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const head = execSync("git rev-parse --short HEAD", { cwd: root, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    const dirty = execSync("git status --porcelain -- src", { cwd: root, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    return dirty ? `${head} (src/ has uncommitted changes)` : head;
  } catch {
    return "unknown";
  }
}

let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) {
      killAllNow();
      removeTempDirsNow();
      process.exit(130);
    }
    interrupted = true;
    log(`${sig}: stopping every process and removing temp files`);
    void cleanupAll().finally(() => process.exit(130));
  });
}
process.on("exit", () => {
  killAllNow();
  removeTempDirsNow();
});

main()
  .then(
    async (code) => {
      await cleanupAll();
      process.exitCode = code;
    },
    async (err: Error) => {
      log(`bench failed: ${err.stack ?? err.message}`);
      await cleanupAll();
      process.exitCode = 1;
    },
  );
