/** Runs kiln components as real processes and waits for their "ready" log line. */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The built CLI; `KILN_BIN` points the tests or the bench at another build (e.g. an older commit's, for a before/after run). */
export const KILN_BIN = process.env.KILN_BIN || fileURLToPath(new URL("../../dist/kiln.mjs", import.meta.url));

export interface ReadyLine {
  event: "ready";
  component: string;
  [key: string]: unknown;
}

export interface KilnProcess {
  proc: ChildProcess;
  ready: ReadyLine;
  /** Every stdout line seen so far (JSON logs). */
  lines: string[];
  stderr: string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function spawnKiln(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<KilnProcess> {
  const proc = spawn(process.execPath, [KILN_BIN, ...args], {
    env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_LOG_LEVEL ?? "info", ...opts.env },
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on("line", (l) => stderr.push(l));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const ready = await new Promise<ReadyLine>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL"); // never leak a process that did not come up
      reject(new Error(`kiln ${args.join(" ")} not ready after ${opts.timeoutMs ?? 20_000} ms\n${stderr.join("\n")}\n${lines.slice(-20).join("\n")}`));
    }, opts.timeoutMs ?? 20_000);
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      lines.push(line);
      if (!line.includes('"ready"')) return;
      try {
        const parsed = JSON.parse(line) as ReadyLine;
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
      reject(new Error(`kiln ${args.join(" ")} exited with ${code} before ready\n${stderr.join("\n")}\n${lines.join("\n")}`));
    });
  });
  return {
    proc,
    ready,
    lines,
    stderr,
    async kill(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

/** Runs a kiln CLI command to completion. */
export function runKiln(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [KILN_BIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => (stdout += d));
    proc.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`kiln ${args.join(" ")} timed out\n${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
