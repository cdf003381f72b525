/**
 * The swarm phase: N nodes want one file from an origin capped at a fixed total
 * rate. Three ways, same file, same nodes, one after the other:
 * - kiln: scheduler, seed peer and N peers; N `kiln get` processes at once;
 * - BitTorrent: an aria2c seeder at the same cap, opentracker, N aria2c leechers;
 * - direct: N `curl -o FILE` at once from the origin.
 * Per role: CPU seconds over the run, bytes in and out, peak RSS.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { bitTorrentRun } from "./bittorrent.js";
import { metric, startCluster, type BenchPeer } from "./cluster.js";
import { machineCpu, processCpu, reapedChildrenCpu } from "./cpu.js";
import { kilnGet, log, onCleanup, peakRss, runTimed, startBenchOrigin, type GetResult } from "./procs.js";
import type { Topology } from "./topology.js";
import { MB, fileSha256, fmt, sum, ticker } from "./util.js";

export type System = "kiln" | "BitTorrent" | "direct";

/** One process (or a group of like processes, summed) over one run. */
export interface RoleUse {
  system: System;
  role: string;
  /** Peers and leechers are listed one by one and also summarised by group. */
  group?: "peer" | "leecher";
  count: number;
  cpuS: number;
  inBytes: number;
  outBytes: number;
  /** Control-plane roles (scheduler, tracker): CPU is per MiB delivered to all clients. */
  control?: boolean;
  /** VmHWM in bytes (the largest of the group). */
  peakRss: number;
}

export interface SwarmRow {
  system: System;
  path: string;
  /** Bytes the origin (or the BitTorrent seeder) sent ÷ file size. */
  sourceRatio: number;
  completionMs: number;
  clientMs: number[];
  verified: string;
  extra: string;
}

export interface RunCpu {
  wallS: number;
  machineBusy: number;
  machineTotal: number;
}

export interface SwarmResult {
  rows: SwarmRow[];
  roles: RoleUse[];
  machine: Partial<Record<System, RunCpu>>;
  notes: string[];
  /** size ÷ origin rate: the time the origin needs to send the file once. */
  limitMs: number;
  delivered: number;
}

export interface SwarmConfig {
  peers: number;
  size: number;
  sha: string;
  file: string;
  tmp: string;
  originBytesPerSec: number;
  topology: Topology;
  failures: string[];
}

async function verifyAndDelete(out: string, r: GetResult, sha: string, label: string, failures: string[]): Promise<boolean> {
  if (r.code !== 0) {
    failures.push(`${label}: exited ${r.code}: ${r.stderr.split("\n").slice(-3).join(" | ")}`);
    await rm(out, { force: true });
    return false;
  }
  const got = await fileSha256(out).catch((e: Error) => `unreadable (${e.message})`);
  await rm(out, { force: true });
  if (got === sha) return true;
  failures.push(`${label}: ${out} has sha256 ${got}, expected ${sha}`);
  return false;
}

async function peerBytes(p: BenchPeer): Promise<{ p2p: number; origin: number; uploaded: number }> {
  const [p2p, origin, uploaded] = await Promise.all([
    metric(p, "kiln_peer_download_bytes_total", { source: "p2p" }),
    metric(p, "kiln_peer_download_bytes_total", { source: "origin" }),
    metric(p, "kiln_peer_upload_bytes_total"),
  ]);
  return { p2p, origin, uploaded };
}

async function kilnRun(cfg: SwarmConfig, names: string[], origin: Awaited<ReturnType<typeof startBenchOrigin>>, timeoutMs: number, out: SwarmResult) {
  const { size, topology } = cfg;
  log(`kiln: starting scheduler, seed peer and ${cfg.peers} peers`);
  const cluster = await startCluster(names, [], topology);
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
    const cpu = (name: string, pid: number | undefined) => processCpu(pid) - cpu0.get(name)!;
    const getsCpu = reapedChildrenCpu() - reaped0;
    const originCpu = processCpu(origin.pid) - originCpu0;
    const rss = new Map(daemons.map((d) => [d.name, d.peakRss()]));
    const daemonCpu = new Map(daemons.map((d) => [d.name, cpu(d.name, d.proc.pid)]));
    const after = await origin.stats();
    const bytes = await Promise.all(peers.map(peerBytes));
    const seedBytes = await peerBytes(seed);
    log(`kiln: done in ${fmt((t1 - t0) / 1000)} s; verifying ${cfg.peers} outputs (sha256, then delete)`);
    let good = 0;
    for (const x of results) if (await verifyAndDelete(x.file, x.r, cfg.sha, `swarm kiln get on ${x.peer.name}`, cfg.failures)) good++;
    const clientMs = results.map((x) => x.r.endedAt - x.r.startedAt);
    const p2p = sum(bytes.map((b) => b.p2p));
    const originSent = after.sentBytes - before.sentBytes;
    out.rows.push({
      system: "kiln",
      path: "kiln (kiln get through each node's peer)",
      sourceRatio: originSent / size,
      completionMs: t1 - t0,
      clientMs,
      verified: `${good}/${cfg.peers}`,
      extra: `peers got ${fmt((100 * p2p) / (cfg.peers * size))}% from p2p`,
    });
    out.machine.kiln = { wallS: (t1 - t0) / 1000, machineBusy: m1.busy - m0.busy, machineTotal: m1.total - m0.total };
    out.roles.push(
      { system: "kiln", role: "origin (bench HTTP server)", count: 1, cpuS: originCpu, inBytes: 0, outBytes: originSent, peakRss: peakRss(origin.pid) },
      {
        system: "kiln",
        role: "scheduler",
        count: 1,
        cpuS: daemonCpu.get("scheduler")!,
        inBytes: NaN,
        outBytes: NaN,
        control: true,
        peakRss: rss.get("scheduler")!,
      },
      {
        system: "kiln",
        role: "seed peer",
        count: 1,
        cpuS: daemonCpu.get("seed")!,
        inBytes: seedBytes.origin + seedBytes.p2p,
        outBytes: seedBytes.uploaded,
        peakRss: rss.get("seed")!,
      },
      ...peers.map((p, i) => ({
        system: "kiln" as const,
        role: p.name,
        group: "peer" as const,
        count: 1,
        cpuS: daemonCpu.get(p.name)!,
        inBytes: bytes[i]!.p2p + bytes[i]!.origin,
        outBytes: bytes[i]!.uploaded,
        peakRss: rss.get(p.name)!,
      })),
      {
        system: "kiln",
        role: `\`kiln get\` × ${cfg.peers} (sum)`,
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
      `kiln per-client times (spawn → output fsynced and renamed): ${clientMs.map((ms) => fmt(ms / 1000)).join(", ")} s.`,
    );
  } finally {
    await cluster.stop();
  }
}

async function bitTorrent(cfg: SwarmConfig, timeoutMs: number, out: SwarmResult) {
  const { size } = cfg;
  const r = await bitTorrentRun({
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
    path: "BitTorrent (aria2c seeder + opentracker + aria2c leechers)",
    sourceRatio: r.seeder.outBytes / size,
    completionMs: r.completionMs,
    clientMs: r.clientMs,
    verified: `${r.verified}/${cfg.peers}`,
    extra: `${r.pieceLength / 1024} KiB pieces`,
  });
  out.machine.BitTorrent = { wallS: r.wallS, machineBusy: r.machine.busy, machineTotal: r.machine.total };
  out.roles.push(
    { system: "BitTorrent", role: "seeder (aria2c, capped)", count: 1, ...r.seeder },
    { system: "BitTorrent", role: "tracker (opentracker)", count: 1, ...r.tracker, inBytes: NaN, outBytes: NaN, control: true },
    ...r.leechers.map((l, i) => ({ system: "BitTorrent" as const, role: `leecher ${i + 1}`, group: "leecher" as const, count: 1, ...l })),
  );
  out.notes.push(
    `BitTorrent: the seeder sent ${fmt(r.seeder.outBytes / size, 2)} × file; ` +
      `leechers served each other ${fmt(sum(r.leechers.map((l) => l.outBytes)) / size, 2)} × file; ` +
      `per-client times: ${r.clientMs.map((ms) => fmt(ms / 1000)).join(", ")} s ` +
      "(start → aria2c's download-complete hook; each keeps seeding until the last is done).",
  );
}

async function direct(cfg: SwarmConfig, origin: Awaited<ReturnType<typeof startBenchOrigin>>, timeoutMs: number, out: SwarmResult) {
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
  let good = 0;
  for (const [i, x] of results.entries()) if (await verifyAndDelete(x.file, x.r, cfg.sha, `swarm direct curl #${i + 1}`, cfg.failures)) good++;
  log(`direct: done in ${fmt((t1 - t0) / 1000)} s`);
  const clientMs = results.map((x) => x.r.endedAt - x.r.startedAt);
  out.rows.push({
    system: "direct",
    path: "direct (curl -o FILE on each node)",
    sourceRatio: (after.sentBytes - before.sentBytes) / size,
    completionMs: t1 - t0,
    clientMs,
    verified: `${good}/${cfg.peers}`,
    extra: "",
  });
  out.machine.direct = { wallS: (t1 - t0) / 1000, machineBusy: m1.busy - m0.busy, machineTotal: m1.total - m0.total };
  out.roles.push(
    {
      system: "direct",
      role: "origin (bench HTTP server)",
      count: 1,
      cpuS: originCpu,
      inBytes: 0,
      outBytes: after.sentBytes - before.sentBytes,
      peakRss: peakRss(origin.pid),
    },
    {
      system: "direct",
      role: `curl × ${cfg.peers} (sum)`,
      count: cfg.peers,
      cpuS: curlCpu,
      inBytes: cfg.peers * size,
      outBytes: 0,
      peakRss: Math.max(...results.map((x) => x.r.peakRss)),
    },
  );
}

export async function swarmPhase(cfg: SwarmConfig): Promise<SwarmResult> {
  const timeoutMs = Math.max(120_000, ((3 * cfg.peers * cfg.size) / cfg.originBytesPerSec) * 1000);
  const out: SwarmResult = { rows: [], roles: [], machine: {}, notes: [], limitMs: (cfg.size / cfg.originBytesPerSec) * 1000, delivered: cfg.peers * cfg.size };
  const names = Array.from({ length: cfg.peers }, (_, i) => `peer-${i + 1}`);
  const origin = await startBenchOrigin(cfg.file, cfg.originBytesPerSec, cfg.topology.host("origin"));
  const unregister = onCleanup(() => origin.close());
  try {
    await kilnRun(cfg, names, origin, timeoutMs, out);
    await bitTorrent(cfg, timeoutMs, out);
    await direct(cfg, origin, timeoutMs, out);
  } finally {
    unregister();
    await origin.close();
  }
  out.notes.unshift(
    `Lower bounds at the cap (${fmt(cfg.originBytesPerSec / MB, 0)} MB/s): the origin sends the file once → ${fmt(out.limitMs / 1000, 1)} s; ` +
      `${cfg.peers} full copies → ${fmt((cfg.peers * out.limitMs) / 1000, 1)} s. ` +
      "The BitTorrent seeder is capped at the same rate (aria2c --max-overall-upload-limit)" +
      (cfg.topology.kind === "netns" ? "; both also sit on links capped at that rate by tc." : "."),
  );
  const directMs = out.rows.find((r) => r.system === "direct")?.clientMs ?? [];
  out.notes.push(`direct per-client times (curl spawn → exit): ${directMs.map((ms) => fmt(ms / 1000)).join(", ")} s.`);
  return out;
}
