/**
 * Everything the bench starts, and how it is torn down: child processes are
 * tracked so a failure or Ctrl-C never leaves a peer, an origin or a `kiln get`
 * running, and temp directories are removed on every exit path.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { KILN_BIN } from "../test/helpers/proc.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups: (() => Promise<void>)[] = [];

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
/** Graceful teardown: registered cleanups, then any child still alive, then temp dirs. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      await withTimeout(fn(), 15_000).catch((err) => log(`cleanup step failed: ${(err as Error).message}`));
    }
    killAllNow();
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
}

/** Runs `kiln get URL -O out --peer proxyUrl` as its own process, as a user would. */
export function kilnGet(proxyUrl: string, url: string, out: string, timeoutMs: number): Promise<GetResult> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const child = track(
      spawn(process.execPath, [KILN_BIN, "get", url, "-O", out, "--peer", proxyUrl, "--no-progress"], { stdio: ["ignore", "ignore", "pipe"] }),
    );
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[bench] kiln get timed out after ${timeoutMs} ms; killed`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: stderr.trim(), startedAt, endedAt: performance.now() });
    });
  });
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

/** Forks bench/origin-server.ts serving `file` at `<url>` with a total cap of `bytesPerSec` (0 = none). */
export async function startBenchOrigin(file: string, bytesPerSec: number): Promise<BenchOrigin> {
  const execArgv = process.execArgv.length ? process.execArgv : ["--import", "tsx"];
  const child = track(
    fork(fileURLToPath(new URL("./origin-server.ts", import.meta.url)), [file, String(bytesPerSec)], {
      execArgv,
      cwd: repoRoot,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    }),
  );
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
    url: `http://127.0.0.1:${port}/file`,
    pid: child.pid,
    stats,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}
