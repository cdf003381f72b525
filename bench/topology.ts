/**
 * Where the bench's nodes run. On loopback (the default) every node is this
 * machine at 127.0.0.1. With BENCH_NETNS=1 every node gets its own network
 * namespace, joined to a bridge (in a hub namespace of its own, so the host's
 * network is never touched) by a veth pair whose two ends are capped with
 * `tc qdisc tbf`: a node's upload and download each get the node's link rate.
 * Names carry the bench's pid so a run never touches another run's namespaces;
 * those left by a bench that was SIGKILLed are removed at the next start, with
 * the processes it had started in them.
 */
import { execFile, execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { promisify } from "node:util";
import { log, onCleanup, onExitSync } from "./procs.js";

const run = promisify(execFile);

/** A setup problem the user must fix: reported as one line, without a stack. */
export class BenchSetupError extends Error {}

export interface BenchHost {
  name: string;
  /** The address this node's servers listen on and other nodes reach it at. */
  ip: string;
  /** The command line that runs `cmd args` on this node. */
  command(cmd: string, args: string[]): [string, string[]];
  /** GET (or POST `body` as JSON) `url` from this node; resolves to the body, rejects on HTTP errors. */
  httpText(url: string, body?: string): Promise<string>;
}

export interface Topology {
  kind: "loopback" | "netns";
  host(name: string): BenchHost;
  /** One line for the results header. */
  describe(): string;
  close(): Promise<void>;
}

export interface NodeSpec {
  name: string;
  /** Link rate in Mbit/s (10^6 bits), both directions. */
  mbit: number;
}

async function fetchText(url: string, body?: string): Promise<string> {
  const res = await fetch(url, body === undefined ? {} : { method: "POST", body, headers: { "content-type": "application/json" } });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return text;
}

export function loopbackTopology(): Topology {
  const host = (name: string): BenchHost => ({ name, ip: "127.0.0.1", command: (cmd, args) => [cmd, args], httpText: fetchText });
  return { kind: "loopback", host, describe: () => "everything on loopback (127.0.0.1), no link limits", close: async () => undefined };
}

const NS_PREFIX = "kbench";
const SUBNET = "10.231"; // /16, used only inside the namespaces this module creates

function nsExists(name: string): boolean {
  try {
    return readdirSync("/run/netns").includes(name);
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Namespaces named by a bench whose process is gone (it was SIGKILLed mid-run). */
function removeStaleNamespaces(): void {
  let names: string[] = [];
  try {
    names = readdirSync("/run/netns");
  } catch {
    return;
  }
  for (const n of names) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(n);
    if (!m || pidAlive(Number(m[1]))) continue;
    log(`removing network namespace ${n} left by an earlier bench (pid ${m[1]} is gone), and the processes it left in it`);
    try {
      const pids = execFileSync("ip", ["netns", "pids", n], { stdio: ["ignore", "pipe", "ignore"] })
        .toString()
        .split(/\s+/)
        .filter(Boolean);
      for (const pid of pids) process.kill(Number(pid), "SIGKILL");
    } catch {
      /* none left */
    }
    try {
      execFileSync("ip", ["netns", "del", n], { stdio: "ignore" });
    } catch {
      /* already gone */
    }
  }
}

async function requireCommands(): Promise<void> {
  if (process.getuid?.() !== 0) throw new BenchSetupError("BENCH_NETNS=1 needs root (it creates network namespaces, veth pairs and tc qdiscs)");
  const missing: string[] = [];
  for (const c of ["ip", "tc", "curl"]) {
    try {
      await run("sh", ["-c", `command -v ${c}`]);
    } catch {
      missing.push(c);
    }
  }
  if (missing.length) {
    throw new BenchSetupError(`BENCH_NETNS=1 needs ${missing.join(", ")} on PATH (Debian packages: iproute2 for ip and tc, curl for curl)`);
  }
}

/** tbf needs a bucket of at least one GSO packet and a few ms at the rate, or it drops or stalls. */
function tbfArgs(mbit: number): string[] {
  const bytesPerSec = (mbit * 1e6) / 8;
  const burst = Math.max(256 * 1024, Math.round(bytesPerSec / 250));
  return ["root", "tbf", "rate", `${mbit}mbit`, "burst", String(burst), "latency", "50ms"];
}

export async function netnsTopology(nodes: NodeSpec[]): Promise<Topology> {
  await requireCommands();
  removeStaleNamespaces();
  const tag = `${NS_PREFIX}${process.pid}`;
  const hub = `${tag}-hub`;
  const created: string[] = [];
  const removeNow = () => {
    for (const ns of created.splice(0).reverse()) {
      if (!nsExists(ns)) continue;
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        /* keep going: remove every other one */
      }
    }
  };
  const unregisterSync = onExitSync(removeNow);
  const unregister = onCleanup(async () => removeNow());
  const ip = (...args: string[]) => run("ip", args);
  const hosts = new Map<string, BenchHost>();
  try {
    await ip("netns", "add", hub);
    created.push(hub);
    await ip("-n", hub, "link", "add", "kbr", "type", "bridge");
    await ip("-n", hub, "link", "set", "kbr", "up");
    for (const [i, node] of nodes.entries()) {
      if (hosts.has(node.name)) throw new Error(`node ${node.name} listed twice`);
      const ns = `${tag}-${i}`;
      const addr = `${SUBNET}.${Math.floor((i + 10) / 250)}.${((i + 10) % 250) + 1}`;
      await ip("netns", "add", ns);
      created.push(ns);
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", `h${i}`, "netns", hub);
      await ip("-n", ns, "addr", "add", `${addr}/16`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await ip("-n", hub, "link", "set", `h${i}`, "master", "kbr", "up");
      await run("tc", ["-n", ns, "qdisc", "add", "dev", "eth0", ...tbfArgs(node.mbit)]);
      await run("tc", ["-n", hub, "qdisc", "add", "dev", `h${i}`, ...tbfArgs(node.mbit)]);
      const command = (cmd: string, args: string[]): [string, string[]] => ["ip", ["netns", "exec", ns, cmd, ...args]];
      hosts.set(node.name, {
        name: node.name,
        ip: addr,
        command,
        async httpText(url, body) {
          const curlArgs = ["-sS", "--fail", "--max-time", "20", ...(body === undefined ? [] : ["-H", "content-type: application/json", "-d", body]), url];
          const [c, a] = command("curl", curlArgs);
          return (await run(c, a, { maxBuffer: 16 * 1024 * 1024 })).stdout;
        },
      });
    }
  } catch (err) {
    unregister();
    unregisterSync();
    removeNow();
    const e = err as Error & { stderr?: string };
    throw new BenchSetupError(`BENCH_NETNS=1: could not build the namespaces: ${(e.stderr ?? e.message).trim().split("\n")[0]}`);
  }
  const rates = [...new Set(nodes.map((n) => n.mbit))].sort((a, b) => a - b);
  log(`network namespaces: ${nodes.length} nodes on a bridge (${tag}-*), links ${rates.map((r) => `${r} Mbit/s`).join(" / ")}`);
  return {
    kind: "netns",
    host(name) {
      const h = hosts.get(name);
      if (!h) throw new Error(`no node named ${name} in the namespace topology`);
      return h;
    },
    describe: () => {
      const byRate = rates.map(
        (r) =>
          `${nodes
            .filter((n) => n.mbit === r)
            .map((n) => n.name)
            .join(", ")}: ${r} Mbit/s`,
      );
      return `multi-host mode: each node in its own network namespace on one bridge; link caps (tc tbf, each direction) — ${byRate.join("; ")}`;
    },
    async close() {
      unregister();
      unregisterSync();
      removeNow();
    },
  };
}
