/**
 * `npm run bench`: kiln against what a user would run instead, in the same run.
 *
 * 1. Swarm (bench/swarm.ts, over every link profile × node count by bench/matrix.ts):
 *    N nodes want one file from an origin capped at a fixed TOTAL rate: kiln
 *    (scheduler, seed peer, N peers, N `kiln get`), BitTorrent (aria2c seeder at the
 *    same cap, opentracker, N aria2c leechers), direct (N `curl -o FILE`, up to
 *    BENCH_DIRECT_MAX_PEERS nodes). Completion p50/p99/max, ÷ the limit, ÷ BitTorrent,
 *    origin and seed bytes, sha256 of every copy, CPU per role and per MiB, peak RSS:
 *    one summary row per (profile, N, system) (bench/summary.ts), then each run's own tables.
 *    With BENCH_NETNS=1 every node of this phase runs in its own network namespace
 *    with a tc-capped link (bench/topology.ts).
 * 2. Single node (bench/single.ts), loopback, unlimited origin: curl -o, a minimal
 *    Node pipe, the in-process Node client, `kiln get` cold / hit / warm.
 * 3. Image pull (bench/image-pull.ts): skopeo straight from docker-registry, then
 *    through a peer as its mirror.
 * 4. Scheduler (bench/scheduler.ts, written separately; see the marked place below).
 * Then the project's goals as ratios against those anchors.
 *
 * Env (MB = 10^6 B, Mbit = 10^6 bit; lists are comma-separated):
 * - BENCH_PEERS: node counts, one swarm run each (8; multi-host: 8,32,64; quick: 4).
 * - BENCH_SIZE_MIB: the file, one size for every count or one per count (unset: 4096 ÷ N MiB,
 *   at most 512 on loopback and 128 in multi-host mode, so a run delivers ≤ 4 GiB; quick: 64).
 *   The single-node phase uses the largest.
 * - BENCH_LINK_MBIT: multi-host link profiles, each node's link both ways (1000,40: CPU-bound
 *   and link-bound); every node count runs under each. Ignored on loopback.
 * - BENCH_ORIGIN_MBPS (50): the origin's total cap. BENCH_DIRECT_MAX_PEERS (16): direct runs
 *   up to this node count (N copies through the capped origin grow with N; skipped rows say so).
 * - BENCH_IMAGE_MIB (256), BENCH_QUICK=1 (4 nodes, 64 MiB file and image unless set explicitly),
 *   BENCH_NETNS=1 (multi-host mode, root), BENCH_ONLY: phases to run, from swarm,single,image,scheduler
 *   (e.g. BENCH_ONLY=swarm for a swarm-only multi-host run; unset: all). BENCH_SWARM_SYSTEMS: the
 *   swarm systems to run, from kiln,BitTorrent,direct (unset: all; the others' rows say skipped).
 * - BENCH_CPU_PROF=DIR: every kiln daemon and `kiln get` runs with --cpu-prof, its profiles in DIR/<name> (seed, peer-N, scheduler, get),
 *   or only those BENCH_CPU_PROF_ONLY names (comma-separated);
 *   BENCH_LOG_DIR=DIR: every line each daemon logs, in DIR/<name>.log; BENCH_PEER_ARGS: extra `kiln peer` flags (swarm).
 * Tables go to stdout and to bench/results/latest.md (latest-netns.md in multi-host mode); progress goes to stderr.
 * Needs dist/kiln.mjs (`npm run bench` builds it; otherwise `node scripts/build.mjs`).
 */
import os from "node:os";
import { execSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { KILN_BIN } from "../test/helpers/proc.js";
import { cleanupAll, killAllNow, log, removeTempDirsNow, runExitSyncsNow, trackTempDir } from "./procs.js";
import { schedulerPhase } from "./scheduler.js";
import { toMarkdown, toText, type Table } from "./table.js";
import { ensureBitTorrentTools } from "./bittorrent.js";
import { imagePullPhase, type ImageRow } from "./image-pull.js";
import { payloadSource, swarmMatrix } from "./matrix.js";
import { SYSTEMS, type System } from "./swarm.js";
import { goalsTable, rolesTable, singleTable, swarmTable } from "./report.js";
import { singlePhase, type SingleRow } from "./single.js";
import { cellName, profileName, summaryTable, type SwarmCell } from "./summary.js";
import { BenchSetupError, checkNetnsPrerequisites } from "./topology.js";
import { fmt } from "./util.js";

const PHASES = ["swarm", "single", "image", "scheduler"] as const;
type Phase = (typeof PHASES)[number];

interface Config {
  quick: boolean;
  netns: boolean;
  phases: Set<Phase>;
  peers: number[];
  /** One per entry of `peers`. */
  sizesMiB: number[];
  /** Multi-host link profiles; empty on loopback. */
  linkMbits: number[];
  originMBps: number;
  imageMiB: number;
  directMaxPeers: number;
  systems: readonly System[];
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new BenchSetupError(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/** "8,32,64" → [8, 32, 64]; undefined when unset. */
function envList(name: string): number[] | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const xs = raw.split(",").map((x) => Number(x.trim()));
  if (xs.some((n) => !Number.isFinite(n) || n <= 0))
    throw new BenchSetupError(`${name} must be a positive number or a comma-separated list of them, got ${JSON.stringify(raw)}`);
  return xs;
}

const envFlag = (name: string) => ["1", "true", "yes"].includes((process.env[name] ?? "").toLowerCase());

function phases(): Set<Phase> {
  const raw = process.env.BENCH_ONLY?.trim();
  if (!raw) return new Set(PHASES);
  const names = raw.split(",").map((x) => x.trim());
  const unknown = names.filter((n) => !(PHASES as readonly string[]).includes(n));
  if (unknown.length) throw new BenchSetupError(`BENCH_ONLY: unknown phase ${unknown.join(", ")} (phases: ${PHASES.join(", ")})`);
  return new Set(names as Phase[]);
}

function swarmSizesMiB(peers: number[], quick: boolean, netns: boolean): number[] {
  const given = envList("BENCH_SIZE_MIB");
  if (given?.length === 1) return peers.map(() => given[0]!);
  if (given?.length === peers.length) return given;
  if (given)
    throw new BenchSetupError(`BENCH_SIZE_MIB lists ${given.length} sizes for ${peers.length} node counts (BENCH_PEERS): give one size, or one per count`);
  if (quick) return peers.map(() => 64);
  // 4 GiB delivered per run at most: feasible on 2 cores; multi-host keeps files small enough for a 40 Mbit link.
  const cap = netns ? 128 : 512;
  return peers.map((n) => Math.max(1, Math.min(cap, Math.floor(4096 / n))));
}

/** BENCH_SWARM_SYSTEMS: a subset of kiln,BitTorrent,direct (default all), for a quicker look at one system. */
function swarmSystems(): readonly System[] {
  const raw = process.env.BENCH_SWARM_SYSTEMS;
  if (!raw) return SYSTEMS;
  const names = raw.split(",").map((s) => s.trim());
  for (const name of names)
    if (!(SYSTEMS as readonly string[]).includes(name))
      throw new BenchSetupError(`BENCH_SWARM_SYSTEMS: unknown ${JSON.stringify(name)}; use ${SYSTEMS.join(",")}`);
  return SYSTEMS.filter((s) => names.includes(s));
}

function config(): Config {
  const quick = envFlag("BENCH_QUICK");
  const netns = envFlag("BENCH_NETNS");
  const peers = (envList("BENCH_PEERS") ?? (quick ? [4] : netns ? [8, 32, 64] : [8])).map((n) => Math.max(1, Math.round(n)));
  if (!netns && process.env.BENCH_LINK_MBIT) log("BENCH_LINK_MBIT is ignored without BENCH_NETNS=1 (loopback has no link limits)");
  return {
    quick,
    netns,
    phases: phases(),
    peers,
    sizesMiB: swarmSizesMiB(peers, quick, netns),
    linkMbits: netns ? (envList("BENCH_LINK_MBIT") ?? [1000, 40]) : [],
    originMBps: envNumber("BENCH_ORIGIN_MBPS", 50),
    imageMiB: envNumber("BENCH_IMAGE_MIB", quick ? 64 : 256),
    directMaxPeers: envNumber("BENCH_DIRECT_MAX_PEERS", 16),
    systems: swarmSystems(),
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

function gitDescribe(): string {
  try {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const head = execSync("git rev-parse --short HEAD", { cwd: root, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    const dirty = execSync("git status --porcelain -- src", { cwd: root, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    return dirty ? `${head} (src/ has uncommitted changes)` : head;
  } catch {
    return "unknown";
  }
}

/** The summary over every swarm run, then each run's own tables (the swarm, and CPU and memory per role). */
function swarmTables(cells: SwarmCell[], cfg: Config): Table[] {
  const one = cells.length === 1;
  const perCell = cells.flatMap((c) => {
    const where = cfg.netns ? `Multi-host swarm, ${profileName(c.linkMbit)} links` : "Swarm";
    const title = `${where}: ${c.result.peers} nodes + 1 seed pull ${fmt(c.result.size / 2 ** 20, 0)} MiB at once, origin capped at ${cfg.originMBps} MB/s total`;
    const roles = `CPU and peak memory per role during the swarm runs${one ? "" : ` (${profileName(c.linkMbit)}, ${cellName(c)})`}`;
    return [swarmTable(c.result, title), rolesTable(c.result, roles)];
  });
  return [summaryTable(cells, cfg.originMBps), ...perCell];
}

function parametersLine(cfg: Config): string {
  const only = process.env.BENCH_ONLY ? ` BENCH_ONLY=${[...cfg.phases].join(",")}` : "";
  const systems = cfg.systems.length < SYSTEMS.length ? ` BENCH_SWARM_SYSTEMS=${cfg.systems.join(",")}` : "";
  const netns = cfg.netns ? ` BENCH_NETNS=1 BENCH_LINK_MBIT=${cfg.linkMbits.join(",")}` : "";
  return (
    `- parameters: BENCH_PEERS=${cfg.peers.join(",")} BENCH_SIZE_MIB=${cfg.sizesMiB.join(",")} BENCH_ORIGIN_MBPS=${cfg.originMBps} ` +
    `BENCH_DIRECT_MAX_PEERS=${cfg.directMaxPeers} BENCH_IMAGE_MIB=${cfg.imageMiB}${netns}${only}${systems} ` +
    "(MB = 10^6 bytes; the origin cap is one limiter shared by every origin connection)"
  );
}

/** Per profile, the links of its largest run (the others differ only in the number of peers). */
function topologyLines(cells: SwarmCell[]): string[] {
  const byProfile = new Map<number | undefined, SwarmCell>();
  for (const c of cells) byProfile.set(c.linkMbit, c);
  return [...byProfile.values()].filter((c) => c.links).map((c) => `- swarm (${profileName(c.linkMbit)}): ${c.links}`);
}

function resultsMarkdown(cfg: Config, started: Date, loadAtStart: number, cells: SwarmCell[], tables: Table[], failures: string[]): string {
  const run = process.env.BENCH_ONLY ? `${[...cfg.phases].join(" + ")} only` : cfg.quick ? "quick" : "default";
  return [
    `# kiln bench — ${run} run${cfg.netns ? ", multi-host mode (BENCH_NETNS=1)" : ""}`,
    "",
    `- date: ${started.toISOString()}`,
    `- commit: ${gitDescribe()}`,
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 1024 ** 3, 0)} GiB RAM, Node ${process.version}, ${os.platform()}`,
    parametersLine(cfg),
    `- 1-minute load average: ${fmt(loadAtStart, 2)} at start, ${fmt(os.loadavg()[0]!, 2)} at end (the bench itself adds several busy processes)`,
    ...(process.env.KILN_BIN ? [`- kiln: KILN_BIN=${process.env.KILN_BIN}`] : []),
    ...topologyLines(cells),
    ...(cfg.phases.has("single") || cfg.phases.has("image") ? ["- single node and image pull: loopback"] : []),
    "- every kiln component is a separate `kiln` process; the origin is a separate Node process serving a file from disk",
    "",
    ...tables.flatMap((t) => [toMarkdown(t), ""]),
    failures.length ? `## Failures\n\n${failures.map((f) => `- ${f}`).join("\n")}\n` : "",
  ].join("\n");
}

async function main(): Promise<number> {
  const cfg = config();
  if (!existsSync(KILN_BIN)) throw new BenchSetupError(`${KILN_BIN} is missing: run \`node scripts/build.mjs\` (npm run bench does it)`);
  const started = new Date();
  const loadAtStart = os.loadavg()[0]!;
  if (loadAtStart > 1.5)
    log(`warning: 1-minute load average is ${fmt(loadAtStart, 2)} on ${os.cpus().length} CPUs; other work on this machine will skew the figures`);
  const mode = `${cfg.quick ? " (quick)" : ""}${cfg.netns ? ` (multi-host mode, links ${cfg.linkMbits.join(" / ")} Mbit/s)` : ""}`;
  const counts = cfg.peers.map((n, i) => `${n} × ${cfg.sizesMiB[i]} MiB`).join(", ");
  log(`kiln bench${mode}: phases ${[...cfg.phases].join(", ")}; swarm ${counts}; origin cap ${cfg.originMBps} MB/s`);
  // Setup problems (missing tools, no root for namespaces) fail here, before any long step.
  if (cfg.phases.has("swarm")) {
    await ensureBitTorrentTools();
    if (cfg.netns) await checkNetnsPrerequisites();
  }
  const tmp = await mkdtemp(join(os.tmpdir(), "kiln-bench-"));
  trackTempDir(tmp);
  const payloadFor = payloadSource(tmp);
  const failures: string[] = [];

  const cells = cfg.phases.has("swarm") ? await swarmMatrix({ ...cfg, tmp, failures }, payloadFor) : [];
  const tables: Table[] = cells.length ? swarmTables(cells, cfg) : [];
  let single: SingleRow[] = [];
  if (cfg.phases.has("single")) {
    const startupMs = await kilnGetStartupMs();
    log(`starting one \`kiln get\` process costs ~${fmt(startupMs, 0)} ms (median of 3 × \`kiln get --help\`)`);
    const sizeMiB = Math.max(...cfg.sizesMiB);
    const { file, sha } = await payloadFor(sizeMiB);
    single = await singlePhase(tmp, file, Math.round(sizeMiB * 2 ** 20), sha, failures);
    tables.push(singleTable(single, sizeMiB, startupMs));
  }
  let images: ImageRow[] = [];
  if (cfg.phases.has("image")) {
    const pulled = await imagePullPhase({ imageMiB: cfg.imageMiB, layers: 8, nodes: Math.min(cfg.peers[0]!, 4) }, tmp, failures);
    images = pulled.rows;
    tables.push(pulled.table);
  }
  // Scheduler throughput and memory at 10,000 hosts.
  if (cfg.phases.has("scheduler")) tables.push(...(await schedulerPhase()));
  const first = cells[0];
  const where = cfg.netns && first ? `multi-host (${profileName(first.linkMbit)}, ${cellName(first)})` : "swarm";
  const goals = goalsTable(first?.result, where, single, images);
  if (goals.rows.length) tables.push(goals);

  process.stdout.write(`\n${tables.map(toText).join("\n\n")}\n`);
  if (failures.length) process.stdout.write(`\nFAILURES (${failures.length}):\n${failures.map((f) => `  - ${f}`).join("\n")}\n`);
  const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
  await mkdir(resultsDir, { recursive: true });
  // The multi-host mode answers another question (real per-link limits): its results do not replace the loopback ones.
  const resultsFile = cfg.netns ? "latest-netns.md" : "latest.md";
  await writeFile(join(resultsDir, resultsFile), resultsMarkdown(cfg, started, loadAtStart, cells, tables, failures));
  log(`tables written to bench/results/${resultsFile}; total ${fmt((Date.now() - started.getTime()) / 1000, 0)} s`);
  return failures.length ? 1 : 0;
}

let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) {
      killAllNow();
      runExitSyncsNow();
      removeTempDirsNow();
      process.exit(130);
    }
    interrupted = true;
    log(`${sig}: stopping every process, removing network namespaces and temp files`);
    void cleanupAll().finally(() => process.exit(130));
  });
}
process.on("exit", () => {
  killAllNow();
  runExitSyncsNow();
  removeTempDirsNow();
});

main().then(
  async (code) => {
    await cleanupAll();
    process.exitCode = code;
  },
  async (err: Error) => {
    log(err instanceof BenchSetupError ? `bench cannot run: ${err.message}` : `bench failed: ${err.stack ?? err.message}`);
    await cleanupAll();
    process.exitCode = 1;
  },
);
