/**
 * `npm run bench`: kiln against what a user would run instead, in the same run.
 *
 * 1. Swarm (bench/swarm.ts): N nodes want one file from an origin capped at a
 *    fixed TOTAL rate: kiln (scheduler, seed peer, N peers, N `kiln get`),
 *    BitTorrent (aria2c seeder at the same cap, opentracker, N aria2c leechers),
 *    direct (N `curl -o FILE`). Completion, per-client rate, sha256 of every copy,
 *    CPU per MiB and peak RSS per role. With BENCH_NETNS=1 every node of this
 *    phase runs in its own network namespace with a tc-capped link (bench/topology.ts).
 * 2. Single node (bench/single.ts), loopback, unlimited origin: curl -o, a minimal
 *    Node pipe, the in-process Node client, `kiln get` cold / hit / warm.
 * 3. Image pull (bench/image-pull.ts): skopeo straight from docker-registry, then
 *    through a peer as its mirror.
 * 4. Scheduler (bench/scheduler.ts, written separately; see the marked place below).
 * Then issue 15's goals as ratios against those anchors.
 *
 * Env: BENCH_PEERS (8), BENCH_SIZE_MIB (512), BENCH_ORIGIN_MBPS (50, MB = 10^6 B),
 * BENCH_IMAGE_MIB (256), BENCH_QUICK=1 (4 peers, 64 MiB file and image unless set explicitly),
 * BENCH_NETNS=1 (multi-host mode, root), BENCH_LINK_MBIT (1000: each node's link in that mode).
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
import { imagePullPhase } from "./image-pull.js";
import { goalsTable, rolesTable, singleTable, swarmTable } from "./report.js";
import { singlePhase } from "./single.js";
import { swarmPhase } from "./swarm.js";
import { BenchSetupError, loopbackTopology, netnsTopology, type Topology } from "./topology.js";
import { MB, MiB, fmt, makePayload } from "./util.js";

interface Config {
  quick: boolean;
  netns: boolean;
  peers: number;
  sizeMiB: number;
  originMBps: number;
  imageMiB: number;
  linkMbit: number;
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new BenchSetupError(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

const envFlag = (name: string) => ["1", "true", "yes"].includes((process.env[name] ?? "").toLowerCase());

function config(): Config {
  const quick = envFlag("BENCH_QUICK");
  return {
    quick,
    netns: envFlag("BENCH_NETNS"),
    peers: Math.round(envNumber("BENCH_PEERS", quick ? 4 : 8)),
    sizeMiB: envNumber("BENCH_SIZE_MIB", quick ? 64 : 512),
    originMBps: envNumber("BENCH_ORIGIN_MBPS", 50),
    imageMiB: envNumber("BENCH_IMAGE_MIB", quick ? 64 : 256),
    linkMbit: envNumber("BENCH_LINK_MBIT", 1000),
  };
}

/** The swarm's nodes: in multi-host mode each gets a namespace; the origin and the BitTorrent seeder sit on links capped at the origin's rate. */
async function swarmTopology(cfg: Config): Promise<Topology> {
  if (!cfg.netns) return loopbackTopology();
  const originMbit = Math.round((cfg.originMBps * MB * 8) / 1e6);
  const link = cfg.linkMbit;
  return netnsTopology([
    { name: "origin", mbit: originMbit },
    { name: "bt-seed", mbit: originMbit },
    { name: "scheduler", mbit: link },
    { name: "tracker", mbit: link },
    { name: "seed", mbit: link },
    ...Array.from({ length: cfg.peers }, (_, i) => ({ name: `peer-${i + 1}`, mbit: link })),
  ]);
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

async function main(): Promise<number> {
  const cfg = config();
  if (!existsSync(KILN_BIN)) throw new BenchSetupError(`${KILN_BIN} is missing: run \`node scripts/build.mjs\` (npm run bench does it)`);
  const size = Math.round(cfg.sizeMiB * MiB);
  const started = new Date();
  const loadAtStart = os.loadavg()[0]!;
  if (loadAtStart > 1.5)
    log(`warning: 1-minute load average is ${fmt(loadAtStart, 2)} on ${os.cpus().length} CPUs; other work on this machine will skew the figures`);
  const mode = `${cfg.quick ? " (quick)" : ""}${cfg.netns ? " (multi-host mode)" : ""}`;
  log(`kiln bench${mode}: ${cfg.peers} peers, ${cfg.sizeMiB} MiB, origin cap ${cfg.originMBps} MB/s`);
  // Setup problems (missing tools, no root for namespaces) fail here, before any long step.
  await ensureBitTorrentTools();
  const topology = await swarmTopology(cfg);
  const tmp = await mkdtemp(join(os.tmpdir(), "kiln-bench-"));
  trackTempDir(tmp);
  const file = join(tmp, "payload.bin");
  log(`writing a ${cfg.sizeMiB} MiB random payload to ${file}`);
  const sha = await makePayload(file, size);
  const failures: string[] = [];

  const startupMs = await kilnGetStartupMs();
  log(`starting one \`kiln get\` process costs ~${fmt(startupMs, 0)} ms (median of 3 × \`kiln get --help\`)`);

  log(`swarm: ${cfg.peers} nodes, origin capped at ${cfg.originMBps} MB/s total`);
  const originBytesPerSec = cfg.originMBps * MB;
  const swarm = await swarmPhase({ peers: cfg.peers, size, sha, file, tmp, originBytesPerSec, topology, failures }).finally(() => topology.close());
  const single = await singlePhase(tmp, file, size, sha, failures);
  const images = await imagePullPhase({ imageMiB: cfg.imageMiB, layers: 8, nodes: Math.min(cfg.peers, 4) }, tmp, failures);

  // Scheduler throughput and memory at 10,000 hosts (issue 15 item 6).
  const schedulerTables: Table[] = await schedulerPhase();

  const swarmTitle =
    `${cfg.netns ? "Multi-host swarm" : "Swarm"}: ${cfg.peers} nodes + 1 seed pull ${cfg.sizeMiB} MiB at once, ` +
    `origin capped at ${cfg.originMBps} MB/s total`;
  const tables: Table[] = [
    swarmTable(swarm, swarmTitle),
    rolesTable(swarm),
    singleTable(single, cfg.sizeMiB, startupMs),
    images.table,
    ...schedulerTables,
    goalsTable(swarm, single, images.rows, cfg.netns),
  ];
  process.stdout.write(`\n${tables.map(toText).join("\n\n")}\n`);
  if (failures.length) process.stdout.write(`\nFAILURES (${failures.length}):\n${failures.map((f) => `  - ${f}`).join("\n")}\n`);

  const md = [
    `# kiln bench — ${cfg.quick ? "quick" : "default"} run${cfg.netns ? ", multi-host mode (BENCH_NETNS=1)" : ""}`,
    "",
    `- date: ${started.toISOString()}`,
    `- commit: ${gitDescribe()}`,
    `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 1024 ** 3, 0)} GiB RAM, Node ${process.version}, ${os.platform()}`,
    `- parameters: BENCH_PEERS=${cfg.peers} BENCH_SIZE_MIB=${cfg.sizeMiB} BENCH_ORIGIN_MBPS=${cfg.originMBps} BENCH_IMAGE_MIB=${cfg.imageMiB}` +
      `${cfg.netns ? ` BENCH_NETNS=1 BENCH_LINK_MBIT=${cfg.linkMbit}` : ""} (MB = 10^6 bytes; the origin cap is one limiter shared by every origin connection)`,
    `- 1-minute load average: ${fmt(loadAtStart, 2)} at start, ${fmt(os.loadavg()[0]!, 2)} at end (the bench itself adds several busy processes)`,
    `- swarm: ${topology.describe()}; single node and image pull: loopback`,
    `- every kiln component is a separate \`kiln\` process; the origin is a separate Node process serving a file from disk`,
    "",
    ...tables.flatMap((t) => [toMarkdown(t), ""]),
    failures.length ? `## Failures\n\n${failures.map((f) => `- ${f}`).join("\n")}\n` : "",
  ].join("\n");
  const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
  await mkdir(resultsDir, { recursive: true });
  // The multi-host mode answers another question (real per-link limits): its results do not replace the loopback ones.
  const resultsFile = cfg.netns ? "latest-netns.md" : "latest.md";
  await writeFile(join(resultsDir, resultsFile), md);
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
