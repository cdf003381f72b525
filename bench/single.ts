/**
 * The single-node phase, always on loopback with an unlimited origin: what one
 * verified hop costs. Anchors: `curl -o FILE` (what a user runs instead) and a
 * minimal Node pipe (bench/node-pipe.ts: GET → sha256 → file, one process: the
 * floor for one verified hop in Node). Then `kiln get` through a peer: cold (its
 * seed peer goes to the origin), a hit (the same peer again: the node holds the
 * content), warm (a fresh peer that finds the content in the swarm). Each row is
 * one process timed from spawn to exit, its output checked against the sha256.
 */
import http from "node:http";
import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { build } from "esbuild";
import { startCluster, type BenchPeer } from "./cluster.js";
import { processCpu, reapedChildrenCpu } from "./cpu.js";
import { kilnGet, log, onCleanup, runTimed, startBenchOrigin, type GetResult } from "./procs.js";
import { MB, fileSha256, fmt, sum } from "./util.js";

export interface SingleRow {
  path: string;
  kind: "curl" | "pipe" | "in-process" | "kiln-cold" | "kiln-hit" | "kiln-warm";
  ms: number;
  bytes: number;
  originRatio: number;
  verified: boolean;
  /** CPU seconds of the client process, and of the kiln daemons (scheduler, seed, peers) over the row. */
  clientCpuS: number;
  daemonCpuS: number;
  peakRss: number;
}

/** A plain HTTP GET in the bench process: the body is hashed and counted, then discarded. */
function inProcessGet(url: string, timeoutMs: number): Promise<{ ok: boolean; bytes: number; sha256: string; ms: number; error?: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const hash = createHash("sha256");
    let bytes = 0;
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok: !error, bytes, sha256: hash.digest("hex"), ms: performance.now() - t0, error });
    };
    const req = http.get(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return finish(`HTTP ${res.statusCode}`);
      }
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      res.once("end", () => finish());
      res.once("error", (e) => finish(e.message));
    });
    req.once("error", (e) => finish(e.message));
    const timer = setTimeout(() => {
      req.destroy();
      finish(`timed out after ${timeoutMs} ms`);
    }, timeoutMs);
  });
}

/** Compiles bench/node-pipe.ts to plain JS, so it starts as fast as dist/kiln.mjs does. */
async function compileNodePipe(tmp: string): Promise<string> {
  const outfile = join(tmp, "node-pipe.mjs");
  await build({
    entryPoints: [fileURLToPath(new URL("./node-pipe.ts", import.meta.url))],
    outfile,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
  });
  return outfile;
}

export async function singlePhase(tmp: string, file: string, size: number, sha: string, failures: string[]): Promise<SingleRow[]> {
  log("single node: unlimited local origin, one client at a time");
  const origin = await startBenchOrigin(file, 0);
  const unregisterOrigin = onCleanup(() => origin.close());
  const rows: SingleRow[] = [];
  const timeout = Math.max(120_000, (size / (10 * MB)) * 1000);
  const pipeJs = await compileNodePipe(tmp);
  let daemonPids: (number | undefined)[] = [];
  const daemonCpu = () => sum(daemonPids.map((p) => processCpu(p)));

  /** One client process; its output is verified and deleted. */
  const measure = async (path: string, kind: SingleRow["kind"], out: string, runIt: () => Promise<GetResult>) => {
    log(`  ${path}`);
    const s0 = await origin.stats();
    const c0 = reapedChildrenCpu();
    const d0 = daemonCpu();
    const r = await runIt();
    const clientCpuS = reapedChildrenCpu() - c0;
    const daemonCpuS = daemonCpu() - d0;
    const s1 = await origin.stats();
    let verified = false;
    if (r.code !== 0) failures.push(`single ${path}: exited ${r.code}: ${r.stderr.split("\n").slice(-3).join(" | ")}`);
    else {
      const got = await fileSha256(out).catch((e: Error) => `unreadable (${e.message})`);
      verified = got === sha;
      if (!verified) failures.push(`single ${path}: output has sha256 ${got}, expected ${sha}`);
    }
    await rm(out, { force: true });
    const ms = r.endedAt - r.startedAt;
    rows.push({ path, kind, ms, bytes: size, originRatio: (s1.sentBytes - s0.sentBytes) / size, verified, clientCpuS, daemonCpuS, peakRss: r.peakRss });
    log(`    ${fmt(ms, 0)} ms`);
  };

  const out = join(tmp, "single.out");
  await measure("curl -o FILE", "curl", out, () => runTimed("curl", ["-sS", "--fail", "-o", out, origin.url], timeout));
  await measure("minimal Node pipe (one process: GET → sha256 → file)", "pipe", out, () => runTimed(process.execPath, [pipeJs, origin.url, out, sha], timeout));

  const s0 = await origin.stats();
  const d = await inProcessGet(origin.url, timeout);
  const s1 = await origin.stats();
  const dOk = d.ok && d.bytes === size && d.sha256 === sha;
  if (!dOk) failures.push(`single in-process client: ${d.error ?? `${d.bytes} bytes, sha256 ${d.sha256}`}`);
  rows.push({
    path: "Node client in the bench process (hash, discard; extra row)",
    kind: "in-process",
    ms: d.ms,
    bytes: d.bytes,
    originRatio: (s1.sentBytes - s0.sentBytes) / size,
    verified: dOk,
    clientCpuS: NaN,
    daemonCpuS: NaN,
    peakRss: NaN,
  });

  log("  starting scheduler, seed peer and two peers");
  const cluster = await startCluster(["peer-a", "peer-b"]);
  daemonPids = [cluster.scheduler, cluster.seed, ...cluster.peers].map((n) => n.proc.pid);
  const [a, b] = cluster.peers as [BenchPeer, BenchPeer];
  try {
    const get = (p: BenchPeer) => () => kilnGet(p.proxyUrl, origin.url, out, timeout);
    await measure("kiln get, cold (peer ← seed ← origin)", "kiln-cold", out, get(a));
    await measure("kiln get, hit (same peer again: the node holds the content)", "kiln-hit", out, get(a));
    await measure("kiln get, warm (fresh peer ← swarm)", "kiln-warm", out, get(b));
  } finally {
    await cluster.stop();
    unregisterOrigin();
    await origin.close();
  }
  return rows;
}
