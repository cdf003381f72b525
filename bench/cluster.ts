/**
 * A scheduler, one seed peer and peers as separate `kiln` processes, each on its
 * own node of the topology (all on 127.0.0.1 on loopback), stopped with the bench
 * whatever happens.
 */
import type { ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { KILN_BIN } from "../test/helpers/proc.js";
import { cpuProfileArgs, onCleanup, peakRss, spawnTracked, trackTempDir } from "./procs.js";
import { controlPlaneCommand, loopbackTopology, type BenchHost, type Topology } from "./topology.js";

export interface KilnNode {
  name: string;
  host: BenchHost;
  proc: ChildProcess;
  /** The ready line's fields (ports). */
  ready: Record<string, unknown>;
  /** VmHWM in bytes, read now (NaN once the process is gone). */
  peakRss(): number;
  /** Its last `n` log lines (stdout and stderr), joined with " | ". */
  logTail(n: number): string;
  kill(): Promise<void>;
}

export interface BenchPeer extends KilnNode {
  /** The proxy as a client on the peer's own node reaches it. */
  proxyUrl: string;
  metricsUrl: string;
}

export interface Cluster {
  scheduler: KilnNode;
  seed: BenchPeer;
  peers: BenchPeer[];
  stop(): Promise<void>;
}

/** Generous: with 64 peers on 2 busy cores one slow boot would otherwise fail the whole run. */
const READY_TIMEOUT_MS = 60_000;

/** BENCH_LOG_DIR: every line a daemon logs, in DIR/<name>.log. */
function openLog(dir: string, name: string): WriteStream {
  mkdirSync(dir, { recursive: true });
  return createWriteStream(join(dir, `${name}.log`));
}

/** Starts `kiln args` on `host` and resolves once it logs its ready line. */
async function startKiln(name: string, host: BenchHost, args: string[], controlPlane = false): Promise<KilnNode> {
  const [cmd, cmdArgs] = host.command(...controlPlaneCommand(host, controlPlane, process.execPath, [...cpuProfileArgs(name), KILN_BIN, ...args]));
  const proc = spawnTracked(cmd, cmdArgs, { env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_LOG_LEVEL ?? "info" }, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  const logFile = process.env.BENCH_LOG_DIR ? openLog(process.env.BENCH_LOG_DIR, name) : undefined;
  const keep = (l: string) => {
    logFile?.write(`${l}\n`);
    tail.push(l);
    if (tail.length > 40) tail.shift();
  };
  createInterface({ input: proc.stderr! }).on("line", keep);
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`kiln ${name} (${args[0]}) not ready after ${READY_TIMEOUT_MS / 1000} s\n${tail.join("\n")}`));
    }, READY_TIMEOUT_MS);
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      keep(line);
      if (!line.includes('"ready"')) return;
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.event === "ready") {
          clearTimeout(timer);
          resolve(parsed);
        }
      } catch {
        /* not JSON */
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`kiln ${name} (${args[0]}) exited with ${code} before ready\n${tail.join("\n")}`));
    });
  });
  return {
    name,
    host,
    proc,
    ready,
    peakRss: () => peakRss(proc.pid),
    logTail: (n) =>
      tail
        .slice(-n)
        .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l))
        .join(" | "),
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * Peers are started on the nodes named like them (`topology.host(name)`); the
 * scheduler on "scheduler", the seed peer on "seed".
 */
export async function startCluster(peerNames: string[], peerArgs: string[] = [], topology: Topology = loopbackTopology()): Promise<Cluster> {
  const dir = await mkdtemp(join(os.tmpdir(), "kiln-bench-cluster-"));
  trackTempDir(dir);
  const started: KilnNode[] = [];
  const stop = async () => {
    await Promise.all(started.splice(1).map((n) => n.kill()));
    await started.pop()?.kill();
    await rm(dir, { recursive: true, force: true });
  };
  const unregister = onCleanup(stop);
  try {
    const schedHost = topology.host("scheduler");
    const scheduler = await startKiln("scheduler", schedHost, ["scheduler", "--host", schedHost.ip, "--port", "0"], true);
    started.push(scheduler);
    const schedulerUrl = `http://${schedHost.ip}:${scheduler.ready.port as number}`;
    const addPeer = async (name: string, seed: boolean): Promise<BenchPeer> => {
      const host = topology.host(name);
      // On its own node a peer listens on every address, so `kiln get` there reaches it on loopback, as a user's would.
      const listen = topology.kind === "netns" ? "0.0.0.0" : host.ip;
      const args = ["peer", "--scheduler", schedulerUrl, "--host", listen, "--advertise-ip", host.ip, "--hostname", name];
      args.push("--port", "0", "--metrics-port", "0", "--data-dir", join(dir, name), ...(seed ? ["--seed"] : ["--proxy-port", "0"]), ...peerArgs);
      const node = await startKiln(name, host, args);
      started.push(node);
      const proxyUrl = `http://127.0.0.1:${node.ready.proxyPort as number}`;
      return { ...node, proxyUrl, metricsUrl: `http://${host.ip}:${node.ready.metricsPort as number}/metrics` };
    };
    const seed = await addPeer("seed", true);
    const peers: BenchPeer[] = [];
    // A few at a time: on a 2-core machine, eight Node processes booting at once can miss the ready timeout.
    for (let i = 0; i < peerNames.length; i += 4) peers.push(...(await Promise.all(peerNames.slice(i, i + 4).map((n) => addPeer(n, false)))));
    return {
      scheduler,
      seed,
      peers,
      stop: async () => {
        unregister();
        await stop();
      },
    };
  } catch (err) {
    unregister();
    await stop().catch(() => undefined);
    throw err;
  }
}

/** Reads one counter (summed over the series whose labels include `labels`) from a peer's /metrics, fetched from its own node. */
export async function metric(peer: BenchPeer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await peer.host.httpText(peer.metricsUrl);
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
