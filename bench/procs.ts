/**
 * Everything the bench starts, and how it is torn down: child processes are
 * tracked so a failure or Ctrl-C never leaves a peer, an origin or a `kiln get`
 * running, and temp directories are removed on every exit path.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { KILN_BIN } from "../test/helpers/proc.js";
import type { BenchHost } from "./topology.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups: (() => Promise<void>)[] = [];
const exitSyncs: (() => void)[] = [];

export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${msg}\n`);
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export function trackTempDir(dir: string): void {
  tempDirs.add(dir);
}

/** Registers an async cleanup (e.g. stopping a cluster); run in reverse order. */
export function onCleanup(fn: () => Promise<void>): () => void {
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

let cleaning: Promise<void> | undefined;
/**
 * Registers a synchronous last step (e.g. deleting network namespaces) that also
 * runs on the exit paths where nothing async can (second Ctrl-C, process exit).
 */
export function onExitSync(fn: () => void): () => void {
  exitSyncs.push(fn);
  return () => {
    const i = exitSyncs.indexOf(fn);
    if (i >= 0) exitSyncs.splice(i, 1);
  };
}

export function runExitSyncsNow(): void {
  for (const fn of exitSyncs.splice(0).reverse()) {
    try {
      fn();
    } catch (err) {
      log(`cleanup step failed: ${(err as Error).message}`);
    }
  }
}

/** Spawns a process that is killed with the bench whatever happens. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return track(spawn(cmd, args, opts));
}

/** True once teardown has begun (Ctrl-C, failure): long loops stop starting new work. */
export function isStopping(): boolean {
  return cleaning !== undefined;
}

/** Graceful teardown: registered cleanups, then any child still alive, then temp dirs. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      await withTimeout(fn(), 15_000).catch((err) => log(`cleanup step failed: ${(err as Error).message}`));
    }
    killAllNow();
    runExitSyncsNow();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    tempDirs.clear();
  })();
  return cleaning;
}

/** Last resort, synchronous: SIGKILL every tracked child, remove temp dirs. */
export function killAllNow(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

export function removeTempDirsNow(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

/** Registers a child process started elsewhere (e.g. by TestCluster) for the last-resort kill. */
export function adopt(child: ChildProcess): void {
  track(child);
}

export interface GetResult {
  code: number | null;
  stderr: string;
  /** performance.now() at spawn and at exit. */
  startedAt: number;
  endedAt: number;
  /** Peak resident set (VmHWM) last seen while it ran, in bytes; NaN if never sampled. */
  peakRss: number;
}

/** VmHWM of a live process in bytes (NaN once it is gone). */
export function peakRss(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Runs `cmd args` to completion (on `host` if given), timing it from spawn to exit
 * and sampling its VmHWM every 200 ms (the last sample is at most that old).
 */
export function runTimed(cmd: string, args: string[], timeoutMs: number, host?: BenchHost, env?: NodeJS.ProcessEnv): Promise<GetResult> {
  return new Promise((resolve) => {
    const [c, a] = host ? host.command(cmd, args) : [cmd, args];
    const startedAt = performance.now();
    const child = track(spawn(c, a, { stdio: ["ignore", "ignore", "pipe"], env: env ?? process.env }));
    let stderr = "";
    let peak = NaN;
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d).slice(-8192)));
    const sampler = setInterval(() => {
      const v = peakRss(child.pid);
      if (Number.isFinite(v)) peak = Number.isFinite(peak) ? Math.max(peak, v) : v;
    }, 200);
    const timer = setTimeout(() => {
      stderr += `\n[bench] ${cmd} timed out after ${timeoutMs} ms; killed`;
      child.kill("SIGKILL");
    }, timeoutMs);
    const done = (code: number | null) => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolve({ code, stderr: stderr.trim(), startedAt, endedAt: performance.now(), peakRss: peak });
    };
    child.once("error", (err) => {
      stderr += `\n${err.message}`;
      done(127);
    });
    child.once("exit", (code) => done(code));
  });
}

/**
 * BENCH_CPU_PROF=DIR: node's --cpu-prof for a kiln process, its profiles in DIR/<name>.
 * BENCH_CPU_PROF_ONLY=name,…: only those processes (profiling all 64 peers of a 2-core
 * machine slows the run down so far that the profiles show mostly contention).
 */
export function cpuProfileArgs(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  const only = process.env.BENCH_CPU_PROF_ONLY?.split(",");
  if (!dir || (only && !only.includes(name))) return [];
  return ["--cpu-prof", "--cpu-prof-dir", join(dir, name)];
}

/** Runs `kiln get URL -O out --peer proxyUrl` as its own process (on the peer's node), as a user would. */
export function kilnGet(proxyUrl: string, url: string, out: string, timeoutMs: number, host?: BenchHost): Promise<GetResult> {
  return runTimed(process.execPath, [...cpuProfileArgs("get"), KILN_BIN, "get", url, "-O", out, "--peer", proxyUrl, "--no-progress"], timeoutMs, host);
}

export interface OriginStats {
  sentBytes: number;
  requests: number;
  rangeRequests: number;
}

export interface BenchOrigin {
  url: string;
  pid: number | undefined;
  stats(): Promise<OriginStats>;
  close(): Promise<void>;
}

/**
 * Starts bench/origin-server.ts (on `host` if given, else loopback) serving `file`
 * at `<url>` with a total cap of `bytesPerSec` (0 = none); talks to it over IPC.
 */
export async function startBenchOrigin(file: string, bytesPerSec: number, host?: BenchHost): Promise<BenchOrigin> {
  const execArgv = process.execArgv.length ? process.execArgv : ["--import", "tsx"];
  const listenIp = host?.ip ?? "127.0.0.1";
  const script = fileURLToPath(new URL("./origin-server.ts", import.meta.url));
  const nodeArgs = [...execArgv, script, file, String(bytesPerSec), listenIp];
  const [cmd, args] = host ? host.command(process.execPath, nodeArgs) : [process.execPath, nodeArgs];
  const child = track(spawn(cmd, args, { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("bench origin not ready after 20 s")), 20_000);
    child.on("message", (m: { type?: string; port?: number }) => {
      if (m?.type === "ready") {
        clearTimeout(t);
        resolve(m.port!);
      }
    });
    void exited.then(() => {
      clearTimeout(t);
      reject(new Error("bench origin exited before it was ready"));
    });
  });
  let nextId = 0;
  const stats = () =>
    new Promise<OriginStats>((resolve, reject) => {
      const id = ++nextId;
      const t = setTimeout(() => reject(new Error("bench origin did not answer a stats request")), 10_000);
      const onMsg = (m: { type?: string; id?: number } & OriginStats) => {
        if (m?.type !== "stats" || m.id !== id) return;
        clearTimeout(t);
        child.off("message", onMsg);
        resolve({ sentBytes: m.sentBytes, requests: m.requests, rangeRequests: m.rangeRequests });
      };
      child.on("message", onMsg);
      child.send({ type: "stats", id });
    });
  return {
    url: `http://${listenIp}:${port}/file`,
    pid: child.pid,
    stats,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}
