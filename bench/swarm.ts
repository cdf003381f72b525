/**
 * The swarm phase: N nodes want one file from an origin capped at a fixed total
 * rate. Three ways, same file, same nodes, one after the other:
 * - kiln: scheduler, seed peer and N peers; N `kiln get` processes at once;
 * - BitTorrent: an aria2c seeder at the same cap, opentracker, N aria2c leechers;
 * - direct: N `curl -o FILE` at once from the origin (skipped where N copies
 *   through one capped origin would take too long: the caller says why).
 * Per role: CPU seconds over the run, bytes in and out, peak RSS. A system that
 * fails is recorded (row and failures list) and the next one still runs.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { bitTorrentRun } from "./bittorrent.js";
import { metric, startCluster, type BenchPeer, type KilnNode } from "./cluster.js";
import { machineCpu, processCpu, reapedChildrenCpu } from "./cpu.js";
import { isStopping, kilnGet, log, onCleanup, peakRss, runTimed, startBenchOrigin, type BenchOrigin, type GetResult } from "./procs.js";
import type { Topology } from "./topology.js";
import type { PieceFailureKind } from "../src/peer/download/piece-fetcher.js";
import { MB, fileSha256, fmt, percentile, sum, ticker } from "./util.js";

export const SYSTEMS = ["kiln", "BitTorrent", "direct"] as const;
export type System = (typeof SYSTEMS)[number];

/** What a process is for, so that the systems compare role by role. */
export type Part = "origin" | "control" | "seed" | "peer" | "client";

/** One process (or a group of like clients, summed) over one run. */
export interface RoleUse {
  system: System;
  role: string;
  /** Peers and leechers are listed one by one; the tables summarise them. */
  part: Part;
  count: number;
  cpuS: number;
  inBytes: number;
  outBytes: number;
  /** VmHWM in bytes (the largest of the group). */
  peakRss: number;
}

export interface SwarmRow {
  system: System;
  path: string;
  /** Bytes the origin (or the BitTorrent seeder) sent ÷ file size. */
  sourceRatio: number;
  /** Bytes the kiln seed peer (or the BitTorrent seeder) uploaded ÷ file size; NaN for direct. */
  seedSentRatio: number;
  /** Start of the run → last client done (failed ones included). */
  completionMs: number;
  /** Per client: start → done (or → failed). */
  clientMs: number[];
  /** Per client: its copy arrived and matched the payload's sha256. */
  clientOk: boolean[];
  extra: string;
  /** Set when the row has no measurements: "skipped: …" or "failed: …". */
  missing?: string;
}

export interface RunCpu {
  wallS: number;
  machineBusy: number;
  machineTotal: number;
}

export interface SwarmResult {
  peers: number;
  size: number;
  rows: SwarmRow[];
  roles: RoleUse[];
  machine: Partial<Record<System, RunCpu>>;
  notes: string[];
  /** max(size ÷ origin rate, size ÷ node link rate): the least time any client can take. */
  limitMs: number;
  limitBy: "origin" | "link";
  delivered: number;
}

export interface SwarmConfig {
  /** Names this run in failures, e.g. "40 Mbit, 32 nodes". */
  label: string;
  peers: number;
  size: number;
  sha: string;
  file: string;
  tmp: string;
  originBytesPerSec: number;
  /** Each node's link in multi-host mode; undefined on loopback (no link limit). */
  linkBytesPerSec?: number;
  /** Systems not run in this cell, each with the reason. */
  skip: Partial<Record<System, string>>;
  topology: Topology;
  failures: string[];
}

/** aria2c's default --bt-max-peers, left as it is. */
const ARIA_MAX_PEERS = 55;

const PATHS: Record<System, string> = {
  kiln: "kiln (kiln get through each node's peer)",
  BitTorrent: "BitTorrent (aria2c seeder + opentracker + aria2c leechers)",
  direct: "direct (curl -o FILE on each node)",
};

export const verifiedCount = (r: SwarmRow): string => `${r.clientOk.filter(Boolean).length}/${r.clientOk.length}`;

function describeExit(r: GetResult): string {
  const why = r.stderr.split("\n").slice(-3).join(" | ") || "no stderr";
  return `${r.code === null ? "was killed" : `exited ${r.code}`}: ${why}`;
}

/** Per-client times in a note: every one for a few clients, quantiles for many. */
export function clientTimesNote(ms: number[]): string {
  const s = (x: number) => fmt(x / 1000);
  if (ms.length <= 16) return `${ms.map(s).join(", ")} s`;
  const q = (p: number) => s(percentile(ms, p));
  return `min ${q(0)}, p10 ${q(0.1)}, p50 ${q(0.5)}, p90 ${q(0.9)}, max ${q(1)} s over ${ms.length} clients`;
}

async function verifyAndDelete(out: string, r: GetResult, sha: string, label: string, failures: string[]): Promise<boolean> {
  if (r.code !== 0) {
    failures.push(`${label} ${describeExit(r)}`);
    await rm(out, { force: true });
    return false;
  }
  const got = await fileSha256(out).catch((e: Error) => `unreadable (${e.message})`);
  await rm(out, { force: true });
  if (got === sha) return true;
  failures.push(`${label}: ${out} has sha256 ${got}, expected ${sha}`);
  return false;
}

/** A peer's byte counters; NaN when its metrics do not answer (it died), so the run's other figures survive. */
async function peerBytes(p: BenchPeer): Promise<{ p2p: number; origin: number; uploaded: number; failures: Record<FailureKind, number> }> {
  const read = (name: string, labels?: Record<string, string>) => metric(p, name, labels).catch(() => NaN);
  const [p2p, origin, uploaded, ...failed] = await Promise.all([
    read("kiln_peer_download_bytes_total", { source: "p2p" }),
    read("kiln_peer_download_bytes_total", { source: "origin" }),
    read("kiln_peer_upload_bytes_total"),
    ...FAILURE_KINDS.map((kind) => read("kiln_peer_piece_failures_total", { kind })),
  ]);
  return { p2p, origin, uploaded, failures: Object.fromEntries(FAILURE_KINDS.map((k, i) => [k, failed[i]!])) as Record<FailureKind, number> };
}

/** Piece fetches that did not bring the piece, by why (the peer's kiln_peer_piece_failures_total). */
const FAILURE_KINDS = ["busy", "timeout", "unreachable", "http_error", "digest_mismatch"] as const satisfies readonly PieceFailureKind[];
type FailureKind = (typeof FAILURE_KINDS)[number];

function failuresNote(all: Record<FailureKind, number>[], seconds: number): string {
  const parts = FAILURE_KINDS.map((k) => {
    const n = sum(all.map((f) => f[k]));
    return k === "busy" ? `${n} busy (${fmt(n / seconds)}/s)` : `${n} ${k.replace("_", " ")}`;
  });
  return `piece fetches refused or failed, all peers: ${parts.join(", ")}.`;
}

/** A daemon that is gone after the run died during it: its last log lines say why the downloads through it failed. */
function reportDeadDaemons(daemons: KilnNode[], label: string, failures: string[]): void {
  for (const d of daemons) {
    if (d.proc.exitCode === null && d.proc.signalCode === null) continue;
    failures.push(`${label}: kiln ${d.name} exited (${d.proc.exitCode ?? d.proc.signalCode}) during the run; last log lines: ${d.logTail(3)}`);
  }
}

async function kilnRun(cfg: SwarmConfig, origin: BenchOrigin, timeoutMs: number, out: SwarmResult) {
  const { size, topology } = cfg;
  log(`kiln: starting scheduler, seed peer and ${cfg.peers} peers`);
  const names = Array.from({ length: cfg.peers }, (_, i) => `peer-${i + 1}`);
  // BENCH_PEER_ARGS: extra `kiln peer` flags for every peer and the seed (trying a setting without a rebuild).
  const cluster = await startCluster(names, process.env.BENCH_PEER_ARGS?.split(" ").filter(Boolean) ?? [], topology);
  const { seed, peers, scheduler } = cluster;
  try {
    log(`kiln: ${cfg.peers} × kiln get at once`);
    const before = await origin.stats();
    const daemons = [scheduler, seed, ...peers];
    const cpu0 = new Map(daemons.map((d) => [d.name, processCpu(d.proc.pid)]));
    const originCpu0 = processCpu(origin.pid);
    const reaped0 = reapedChildrenCpu();
    const m0 = machineCpu();
    let done = 0;
    const stopTick = ticker(5_000, async () => {
      const sent = (await origin.stats()).sentBytes - before.sentBytes;
      return `  kiln: ${done}/${cfg.peers} done, origin sent ${fmt(sent / size, 2)} × file`;
    });
    const t0 = performance.now();
    const results = await Promise.all(
      peers.map(async (p) => {
        const file = join(cfg.tmp, `${p.name}.out`);
        const r = await kilnGet(p.proxyUrl, origin.url, file, timeoutMs, p.host);
        done++;
        return { file, r, peer: p };
      }),
    );
    stopTick();
    const t1 = Math.max(...results.map((x) => x.r.endedAt));
    const m1 = machineCpu();
    const getsCpu = reapedChildrenCpu() - reaped0;
    const originCpu = processCpu(origin.pid) - originCpu0;
    const rss = new Map(daemons.map((d) => [d.name, d.peakRss()]));
    const daemonCpu = new Map(daemons.map((d) => [d.name, processCpu(d.proc.pid) - cpu0.get(d.name)!]));
    const after = await origin.stats();
    const bytes = await Promise.all(peers.map(peerBytes));
    const seedBytes = await peerBytes(seed);
    reportDeadDaemons(daemons, cfg.label, cfg.failures);
    log(`kiln: done in ${fmt((t1 - t0) / 1000)} s; verifying ${cfg.peers} outputs (sha256, then delete)`);
    const clientOk: boolean[] = [];
    for (const x of results) clientOk.push(await verifyAndDelete(x.file, x.r, cfg.sha, `${cfg.label}: kiln get on ${x.peer.name}`, cfg.failures));
    const clientMs = results.map((x) => x.r.endedAt - x.r.startedAt);
    const p2p = sum(bytes.map((b) => b.p2p));
    const originSent = after.sentBytes - before.sentBytes;
    out.rows.push({
      system: "kiln",
      path: PATHS.kiln,
      sourceRatio: originSent / size,
      seedSentRatio: seedBytes.uploaded / size,
      completionMs: t1 - t0,
      clientMs,
      clientOk,
      extra: `peers got ${fmt((100 * p2p) / (cfg.peers * size))}% from p2p`,
    });
    out.machine.kiln = { wallS: (t1 - t0) / 1000, machineBusy: m1.busy - m0.busy, machineTotal: m1.total - m0.total };
    const role = (name: string, part: Part, inBytes: number, outBytes: number): RoleUse => ({
      system: "kiln",
      role: name,
      part,
      count: 1,
      cpuS: daemonCpu.get(name)!,
      inBytes,
      outBytes,
      peakRss: rss.get(name)!,
    });
    out.roles.push(
      {
        system: "kiln",
        role: "origin (bench HTTP server)",
        part: "origin",
        count: 1,
        cpuS: originCpu,
        inBytes: 0,
        outBytes: originSent,
        peakRss: peakRss(origin.pid),
      },
      role("scheduler", "control", NaN, NaN),
      { ...role("seed", "seed", seedBytes.origin + seedBytes.p2p, seedBytes.uploaded), role: "seed peer" },
      ...peers.map((p, i) => role(p.name, "peer", bytes[i]!.p2p + bytes[i]!.origin, bytes[i]!.uploaded)),
      {
        system: "kiln",
        role: `\`kiln get\` × ${cfg.peers} (sum)`,
        part: "client",
        count: cfg.peers,
        cpuS: getsCpu,
        inBytes: cfg.peers * size,
        outBytes: 0,
        peakRss: Math.max(...results.map((x) => x.r.peakRss)),
      },
    );
    const peerUp = sum(bytes.map((b) => b.uploaded));
    out.notes.push(
      `kiln: the seed peer fetched ${fmt(seedBytes.origin / size, 2)} × file from the origin and served ${fmt(seedBytes.uploaded / size, 2)} × file; ` +
        `the ${cfg.peers} peers fetched ${fmt(sum(bytes.map((b) => b.origin)) / size, 2)} × file from the origin, ${fmt(p2p / size, 2)} × from parents, ` +
        `and served each other ${fmt(peerUp / size, 2)} × (max ${fmt(Math.max(...bytes.map((b) => b.uploaded)) / size, 2)} × from one peer); ` +
        `origin saw ${after.requests - before.requests} requests (${after.rangeRequests - before.rangeRequests} with Range).`,
      `kiln per-client times (spawn → output fsynced and renamed): ${clientTimesNote(clientMs)}.`,
      `kiln ${failuresNote(
        bytes.map((b) => b.failures),
        (t1 - t0) / 1000,
      )}`,
    );
  } finally {
    await cluster.stop();
  }
}

async function bitTorrent(cfg: SwarmConfig, timeoutMs: number, out: SwarmResult) {
  const { size } = cfg;
  const r = await bitTorrentRun({
    label: cfg.label,
    file: cfg.file,
    size,
    sha: cfg.sha,
    seederHost: cfg.topology.host("bt-seed"),
    trackerHost: cfg.topology.host("tracker"),
    leecherHosts: Array.from({ length: cfg.peers }, (_, i) => cfg.topology.host(`peer-${i + 1}`)),
    uploadBytesPerSec: cfg.originBytesPerSec,
    timeoutMs,
    failures: cfg.failures,
  });
  log(`BitTorrent: done in ${fmt(r.completionMs / 1000)} s`);
  out.rows.push({
    system: "BitTorrent",
    path: PATHS.BitTorrent,
    sourceRatio: r.seeder.outBytes / size,
    seedSentRatio: r.seeder.outBytes / size,
    completionMs: r.completionMs,
    clientMs: r.clientMs,
    clientOk: r.clientOk,
    extra: `${r.pieceLength / 1024} KiB pieces`,
  });
  out.machine.BitTorrent = { wallS: r.wallS, machineBusy: r.machine.busy, machineTotal: r.machine.total };
  out.roles.push(
    { system: "BitTorrent", role: "seeder (aria2c, capped)", part: "seed", count: 1, ...r.seeder },
    { system: "BitTorrent", role: "tracker (opentracker)", part: "control", count: 1, ...r.tracker, inBytes: NaN, outBytes: NaN },
    ...r.leechers.map((l, i) => ({ system: "BitTorrent" as const, role: `leecher ${i + 1}`, part: "peer" as const, count: 1, ...l })),
  );
  out.notes.push(
    `BitTorrent: the seeder sent ${fmt(r.seeder.outBytes / size, 2)} × file; ` +
      `leechers served each other ${fmt(sum(r.leechers.map((l) => l.outBytes)) / size, 2)} × file; ` +
      `per-client times: ${clientTimesNote(r.clientMs)} ` +
      "(start → aria2c's download-complete hook; each keeps seeding until the last is done)." +
      (cfg.peers + 1 > ARIA_MAX_PEERS ? ` Each aria2c keeps at most ${ARIA_MAX_PEERS} peers (its default --bt-max-peers), as a stock client would.` : ""),
  );
}

async function direct(cfg: SwarmConfig, origin: BenchOrigin, timeoutMs: number, out: SwarmResult) {
  const { size } = cfg;
  log(`direct: ${cfg.peers} × curl -o FILE at once from the origin (~${fmt((cfg.peers * size) / cfg.originBytesPerSec, 0)} s at the cap)`);
  const before = await origin.stats();
  const originCpu0 = processCpu(origin.pid);
  const reaped0 = reapedChildrenCpu();
  const m0 = machineCpu();
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: cfg.peers }, async (_, i) => {
      const file = join(cfg.tmp, `direct-${i + 1}.out`);
      const r = await runTimed("curl", ["-sS", "--fail", "-o", file, origin.url], timeoutMs, cfg.topology.host(`peer-${i + 1}`));
      return { file, r };
    }),
  );
  const t1 = Math.max(...results.map((x) => x.r.endedAt));
  const m1 = machineCpu();
  const originCpu = processCpu(origin.pid) - originCpu0;
  const curlCpu = reapedChildrenCpu() - reaped0;
  const after = await origin.stats();
  const clientOk: boolean[] = [];
  for (const [i, x] of results.entries()) clientOk.push(await verifyAndDelete(x.file, x.r, cfg.sha, `${cfg.label}: direct curl #${i + 1}`, cfg.failures));
  log(`direct: done in ${fmt((t1 - t0) / 1000)} s`);
  const clientMs = results.map((x) => x.r.endedAt - x.r.startedAt);
  const sent = after.sentBytes - before.sentBytes;
  out.rows.push({ system: "direct", path: PATHS.direct, sourceRatio: sent / size, seedSentRatio: NaN, completionMs: t1 - t0, clientMs, clientOk, extra: "" });
  out.machine.direct = { wallS: (t1 - t0) / 1000, machineBusy: m1.busy - m0.busy, machineTotal: m1.total - m0.total };
  out.roles.push(
    {
      system: "direct",
      role: "origin (bench HTTP server)",
      part: "origin",
      count: 1,
      cpuS: originCpu,
      inBytes: 0,
      outBytes: sent,
      peakRss: peakRss(origin.pid),
    },
    {
      system: "direct",
      role: `curl × ${cfg.peers} (sum)`,
      part: "client",
      count: cfg.peers,
      cpuS: curlCpu,
      inBytes: cfg.peers * size,
      outBytes: 0,
      peakRss: Math.max(...results.map((x) => x.r.peakRss)),
    },
  );
  out.notes.push(`direct per-client times (curl spawn → exit): ${clientTimesNote(clientMs)}.`);
}

export function missingRow(system: System, missing: string): SwarmRow {
  return { system, path: PATHS[system], sourceRatio: NaN, seedSentRatio: NaN, completionMs: NaN, clientMs: [], clientOk: [], extra: "", missing };
}

/** Runs one system; if it throws, the row says so, the failure is listed, and the phase goes on. */
async function attempt(system: System, cfg: SwarmConfig, out: SwarmResult, run: () => Promise<void>): Promise<void> {
  if (isStopping()) {
    out.rows.push(missingRow(system, "skipped: the bench is stopping"));
    return;
  }
  try {
    await run();
  } catch (err) {
    const reason = (err as Error).message.trim().split("\n")[0]!;
    log(`${system} failed (${cfg.label}): ${(err as Error).message}`);
    cfg.failures.push(`${cfg.label}: ${system} run failed: ${(err as Error).message.trim().split("\n").slice(0, 4).join(" | ")}`);
    if (!out.rows.some((r) => r.system === system)) out.rows.push(missingRow(system, `failed: ${reason}`));
  }
}

/** The least time any client can take: the origin sends the file once, and a node's link carries it once. */
export function swarmLimit(size: number, originBytesPerSec: number, linkBytesPerSec?: number): Pick<SwarmResult, "limitMs" | "limitBy"> {
  const originMs = (size / originBytesPerSec) * 1000;
  const linkMs = linkBytesPerSec ? (size / linkBytesPerSec) * 1000 : 0;
  return { limitMs: Math.max(originMs, linkMs), limitBy: linkMs > originMs ? "link" : "origin" };
}

export async function swarmPhase(cfg: SwarmConfig): Promise<SwarmResult> {
  const originMs = (cfg.size / cfg.originBytesPerSec) * 1000;
  const linkMs = cfg.linkBytesPerSec ? (cfg.size / cfg.linkBytesPerSec) * 1000 : 0;
  const out: SwarmResult = {
    peers: cfg.peers,
    size: cfg.size,
    rows: [],
    roles: [],
    machine: {},
    notes: [],
    ...swarmLimit(cfg.size, cfg.originBytesPerSec, cfg.linkBytesPerSec),
    delivered: cfg.peers * cfg.size,
  };
  // Generous: direct needs N copies through the origin, or one copy through a node's link.
  const timeoutMs = Math.max(120_000, 3 * Math.max(cfg.peers * originMs, linkMs));
  const origin = await startBenchOrigin(cfg.file, cfg.originBytesPerSec, cfg.topology.host("origin"));
  const unregister = onCleanup(() => origin.close());
  try {
    const runs: Record<System, () => Promise<void>> = {
      kiln: () => kilnRun(cfg, origin, timeoutMs, out),
      BitTorrent: () => bitTorrent(cfg, timeoutMs, out),
      direct: () => direct(cfg, origin, timeoutMs, out),
    };
    for (const system of SYSTEMS) {
      const skipped = cfg.skip[system];
      if (skipped) out.rows.push(missingRow(system, `skipped: ${skipped}`));
      else await attempt(system, cfg, out, runs[system]);
    }
  } finally {
    unregister();
    await origin.close();
  }
  const link = cfg.linkBytesPerSec ? `; each node's link (${fmt((cfg.linkBytesPerSec * 8) / 1e6, 0)} Mbit/s) → ${fmt(linkMs / 1000, 1)} s` : "";
  out.notes.unshift(
    `Lower bounds: the origin (${fmt(cfg.originBytesPerSec / MB, 0)} MB/s) sends the file once → ${fmt(originMs / 1000, 1)} s${link}; ` +
      `${cfg.peers} full copies from the origin → ${fmt((cfg.peers * originMs) / 1000, 1)} s. ` +
      "The BitTorrent seeder is capped at the origin's rate (aria2c --max-overall-upload-limit)" +
      (cfg.topology.kind === "netns" ? "; both also sit on links capped at that rate by tc." : "."),
  );
  return out;
}
