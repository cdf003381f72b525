/**
 * CPU accounting from /proc (Linux only; every function degrades to NaN elsewhere):
 * per-process CPU seconds, CPU of reaped children (`kiln get` processes), and the
 * whole machine's busy time. Used to tell a CPU-bound phase from a waiting one.
 */
import { readFileSync } from "node:fs";
import os from "node:os";

const TICK = 100; // USER_HZ on Linux

function statFields(path: string): string[] | undefined {
  try {
    const raw = readFileSync(path, "utf8");
    // The command name may contain spaces: fields start after the last ')'.
    return raw
      .slice(raw.lastIndexOf(")") + 2)
      .trim()
      .split(/\s+/);
  } catch {
    return undefined;
  }
}

/** utime + stime of a live process, in seconds. */
export function processCpu(pid: number | undefined): number {
  const f = pid === undefined ? undefined : statFields(`/proc/${pid}/stat`);
  // After ')': state(0) ... utime is field 14 overall → index 11 here, stime index 12.
  return f ? (Number(f[11]) + Number(f[12])) / TICK : NaN;
}

/** CPU seconds of this process's children that have exited and been waited for. */
export function reapedChildrenCpu(): number {
  const f = statFields("/proc/self/stat");
  return f ? (Number(f[13]) + Number(f[14])) / TICK : NaN;
}

/** CPU seconds of the bench process itself. */
export function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export interface MachineCpu {
  busy: number;
  total: number;
}

/** Whole-machine busy and total CPU seconds since boot (summed over CPUs). */
export function machineCpu(): MachineCpu {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (line[3] ?? 0) + (line[4] ?? 0);
    return { busy: (total - idle) / TICK, total: total / TICK };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

export function cpuCount(): number {
  return os.cpus().length;
}
