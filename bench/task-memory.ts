/**
 * The "tasks" scenario of bench/proxy-memory.ts: many tiny,
 * distinct tasks through one peer's proxy, and the resident set of the peer, the seed
 * peer (which fetched each from the origin) and the scheduler once warm (after a first
 * batch of tasks: heaps and buffer pools grow to their working size then), right after
 * and after a quiet spell. What a process keeps per task shows as MiB per 1,000 tasks.
 */
import http from "node:http";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { metric, type BenchPeer, type KilnNode } from "./cluster.js";
import { log, type BenchOrigin } from "./procs.js";
import type { Table } from "./table.js";
import { MiB, fmt } from "./util.js";

export interface TaskLoad {
  tasks: number;
  /** Tasks fetched before the "warm" figure is taken (not counted in `tasks`). */
  warmup: number;
  taskBytes: number;
  /** Requests in flight at once. */
  clients: number;
  idleSeconds: number;
  /** The --resident-tasks the peers were started with ("default" when not given). */
  resident: string;
}

const rss = (pid: number): number => {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
};

/** One GET through the proxy (P2P asked for, as `kiln get` on the node does); resolves with the body's sha256, or the failure. */
function get(peer: BenchPeer, url: string): Promise<string> {
  const proxy = new URL(peer.proxyUrl);
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { "x-dragonfly-use-p2p": "true" } }, (res) => {
      const hash = createHash("sha256");
      res.on("data", (c: Buffer) => hash.update(c));
      res.once("end", () => resolve(res.statusCode === 200 ? hash.digest("hex") : `status ${res.statusCode}`));
      res.once("error", (err) => resolve(err.message));
    });
    req.once("error", (err) => resolve(err.message));
    req.end();
  });
}

export async function manyTasks(peer: BenchPeer, seed: BenchPeer, scheduler: KilnNode, origin: BenchOrigin, sha256: string, load: TaskLoad): Promise<Table> {
  const procs = [
    { name: "peer (proxy)", pid: peer.proc.pid! },
    { name: "seed peer", pid: seed.proc.pid! },
    { name: "scheduler", pid: scheduler.proc.pid! },
  ];
  const start = procs.map((p) => rss(p.pid));
  let right = 0;
  let firstError: string | undefined;
  /** Fetches tasks [from, to), `load.clients` at a time. */
  const fetchTasks = async (from: number, to: number) => {
    const t0 = Date.now();
    let next = from;
    await Promise.all(
      Array.from({ length: load.clients }, async () => {
        for (let i = next++; i < to; i = next++) {
          const got = await get(peer, `${origin.url}?task=${i}`);
          if (got === sha256) right++;
          else firstError ??= got;
          if (i % 2000 === 0) log(`tasks: ${i} (${((Date.now() - t0) / 1000).toFixed(0)} s), peer RSS ${fmt(rss(procs[0]!.pid) / MiB, 0)} MiB`);
        }
      }),
    );
    return (Date.now() - t0) / 1000;
  };
  log(`tasks: warming up with ${load.warmup} tasks; RSS ${start.map((b) => fmt(b / MiB, 0)).join(" / ")} MiB`);
  await fetchTasks(0, load.warmup);
  const before = procs.map((p) => rss(p.pid));
  log(`tasks: ${load.tasks} tasks of ${load.taskBytes} bytes, ${load.clients} at a time; RSS ${before.map((b) => fmt(b / MiB, 0)).join(" / ")} MiB`);
  const seconds = await fetchTasks(load.warmup, load.warmup + load.tasks);
  const all = load.warmup + load.tasks;
  if (firstError) log(`tasks: ${all - right} wrong answers, e.g. ${firstError}`);
  const after = procs.map((p) => rss(p.pid));
  await sleep(load.idleSeconds * 1000);
  const idle = procs.map((p) => rss(p.pid));
  const held = await metric(peer, "kiln_peer_tasks");
  const inMemory = await metric(peer, "kiln_peer_tasks_in_memory");
  return {
    title: `${load.tasks} distinct tasks of ${load.taskBytes} bytes through one peer's proxy: resident set (--resident-tasks ${load.resident})`,
    headers: [
      "process",
      "RSS at start MiB",
      `warm (${load.warmup} tasks) MiB`,
      `+${load.tasks} tasks MiB`,
      `after ${load.idleSeconds} s idle MiB`,
      "MiB per 1,000 tasks (idle − warm)",
    ],
    numeric: [false, true, true, true, true, true],
    rows: procs.map((p, i) => [
      p.name,
      fmt(start[i]! / MiB, 0),
      fmt(before[i]! / MiB, 0),
      fmt(after[i]! / MiB, 0),
      fmt(idle[i]! / MiB, 0),
      fmt(((idle[i]! - before[i]!) / MiB / load.tasks) * 1000, 2),
    ]),
    notes: [
      `right: ${right}/${all} answers matched the content's sha256; ${fmt(seconds, 0)} s for the ${load.tasks} after the warm-up`,
      `the peer holds ${held} tasks on disk, ${inMemory ? `${inMemory} with their metadata in memory` : "all with their metadata in memory (no kiln_peer_tasks_in_memory on this build)"}`,
      "the seed peer fetched each task from the origin and holds it too; the scheduler knows both holders of each",
      `RSS: VmRSS; machine: ${os.cpus().length} cores, load ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    ],
  };
}
