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
import { execFile, execFileSync, spawn } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { log, onCleanup, onExitSync } from "./procs.js";

const run = promisify(execFile);

/** A setup problem the user must fix: reported as one line, without a stack. */
export class BenchSetupError extends Error {}

export interface BenchHost {
  name: string;
  /** The address this node's servers listen on and other nodes reach it at. */
  ip: string;
  /** In its own network namespace (multi-host mode, run as root). */
  netns: boolean;
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
  const host = (name: string): BenchHost => ({ name, ip: "127.0.0.1", netns: false, command: (cmd, args) => [cmd, args], httpText: fetchText });
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

/** Runs `cmd args -batch -` with `lines` on its stdin (one exec for many commands); rejects with the first error line. */
function runBatch(cmd: string, args: string[], lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args, "-batch", "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d).slice(-4096)));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(Object.assign(new Error(`${cmd} -batch exited ${code}`), { stderr }))));
    child.stdin.end(`${lines.join("\n")}\n`);
  });
}

/** Runs `fn` over `items`, `limit` at a time. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** 10.231.0.11, 10.231.0.12, ...: one /16 leaves room for thousands of nodes. */
function nodeAddress(i: number): string {
  return `${SUBNET}.${Math.floor((i + 10) / 250)}.${((i + 10) % 250) + 1}`;
}

/**
 * Builds every namespace, veth pair and qdisc with a handful of `ip -batch` and
 * `tc -batch` calls (one exec per command took ~24 s for 69 nodes on 2 busy cores).
 * Veth names are `h<i>` in the hub (≤ 15 characters for any count) and `eth0` in each node.
 */
async function buildNamespaces(hub: string, nsNames: string[], nodes: NodeSpec[]): Promise<void> {
  await runBatch(
    "ip",
    [],
    [
      `netns add ${hub}`,
      ...nsNames.map((ns) => `netns add ${ns}`),
      ...nsNames.map((ns, i) => `link add eth0 netns ${ns} type veth peer name h${i} netns ${hub}`),
    ],
  );
  await runBatch("ip", ["-n", hub], ["link add kbr type bridge", "link set kbr up", ...nsNames.map((_, i) => `link set h${i} master kbr up`)]);
  await runBatch(
    "tc",
    ["-n", hub],
    nodes.map((n, i) => `qdisc add dev h${i} ${tbfArgs(n.mbit).join(" ")}`),
  );
  await eachLimit(nsNames, 4, async (ns, i) => {
    await runBatch("ip", ["-n", ns], ["link set lo up", `addr add ${nodeAddress(i)}/16 dev eth0`, "link set eth0 up"]);
    await run("tc", ["-n", ns, "qdisc", "add", "dev", "eth0", ...tbfArgs(nodes[i]!.mbit)]);
  });
}

function netnsHost(name: string, ns: string, addr: string): BenchHost {
  const command = (cmd: string, args: string[]): [string, string[]] => ["ip", ["netns", "exec", ns, cmd, ...args]];
  return {
    name,
    ip: addr,
    netns: true,
    command,
    async httpText(url, body) {
      const curlArgs = ["-sS", "--fail", "--max-time", "20", ...(body === undefined ? [] : ["-H", "content-type: application/json", "-d", body]), url];
      const [c, a] = command("curl", curlArgs);
      return (await run(c, a, { maxBuffer: 16 * 1024 * 1024 })).stdout;
    },
  };
}

/** Stops early with a clear message when multi-host mode cannot run here (not root, no `ip`/`tc`/`curl`); clears namespaces of dead benches. */
export async function checkNetnsPrerequisites(): Promise<void> {
  await requireCommands();
  removeStaleNamespaces();
}

const NEIGH_SYSCTL = "/proc/sys/net/ipv4/neigh/default";

/**
 * The kernel's ARP table is one for all network namespaces, and its hard limit
 * (gc_thresh3, 1024 by default) counts every namespace's entries. Each node may need
 * one for every other, N × (N − 1) in all: at 33 nodes that is past 1024, and a node
 * that joined after the table filled could reach no one it had not reached before
 * ("neighbor table overflow" in dmesg; its connects sat in SYN-SENT for a minute). A
 * real cluster has a table per machine. So the limits are raised for the run and put
 * back after; returns the function that puts them back.
 */
function raiseNeighbourLimits(nodes: number): () => void {
  const needed = nodes * nodes + 1024;
  const saved: [string, string][] = [];
  for (const name of ["gc_thresh2", "gc_thresh3"]) {
    const file = `${NEIGH_SYSCTL}/${name}`;
    const current = readFileSync(file, "utf8").trim();
    if (Number(current) >= needed) continue;
    try {
      writeFileSync(file, String(needed));
      saved.push([file, current]);
    } catch (err) {
      log(`warning: could not raise ${file} to ${needed} (${(err as Error).message}): nodes that join late may not reach their peers`);
    }
  }
  return () => {
    for (const [file, value] of saved.splice(0)) writeFileSync(file, value);
  };
}

/** "a, b, c" for a few names; "a, b, c, …, z (40 nodes)" for many. */
function namesInShort(names: string[]): string {
  if (names.length <= 8) return names.join(", ");
  return `${names.slice(0, 5).join(", ")}, …, ${names[names.length - 1]} (${names.length} nodes)`;
}

export async function netnsTopology(nodes: NodeSpec[]): Promise<Topology> {
  await checkNetnsPrerequisites();
  const names = new Set(nodes.map((n) => n.name));
  if (names.size !== nodes.length) throw new Error("a node is listed twice in the namespace topology");
  const tag = `${NS_PREFIX}${process.pid}`;
  const hub = `${tag}-hub`;
  const nsNames = nodes.map((_, i) => `${tag}-${i}`);
  // Listed before they exist: removal skips the ones that were never created (or are gone already), so it may run again.
  const created = [hub, ...nsNames];
  const restoreNeighbourLimits = raiseNeighbourLimits(nodes.length);
  const removeNow = () => {
    restoreNeighbourLimits();
    for (const ns of [...created].reverse()) {
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
  const hosts = new Map<string, BenchHost>();
  try {
    await buildNamespaces(hub, nsNames, nodes);
    for (const [i, node] of nodes.entries()) hosts.set(node.name, netnsHost(node.name, nsNames[i]!, nodeAddress(i)));
  } catch (err) {
    unregister();
    unregisterSync();
    removeNow();
    const e = err as Error & { stderr?: string };
    throw new BenchSetupError(`BENCH_NETNS=1: could not build the namespaces: ${(e.stderr || e.message).trim().split("\n")[0]}`);
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
      const byRate = rates.map((r) => `${namesInShort(nodes.filter((n) => n.mbit === r).map((n) => n.name))}: ${r} Mbit/s`);
      return `multi-host mode: each node in its own network namespace on one bridge; link caps (tc tbf, each direction) — ${byRate.join("; ")}`;
    },
    async close() {
      unregister();
      unregisterSync();
      removeNow();
    },
  };
}

/**
 * A control-plane process (kiln's scheduler, BitTorrent's tracker) runs at nice -10 in
 * multi-host mode: on a cluster it has a machine of its own, here it shares 2 cores with
 * every peer and client, and a starved scheduler would time out keepalives and
 * registrations that a real one answers at once. Both systems get the same treatment.
 */
export function controlPlaneCommand(host: BenchHost, controlPlane: boolean, cmd: string, args: string[]): [string, string[]] {
  return controlPlane && host.netns ? ["nice", ["-n", "-10", cmd, ...args]] : [cmd, args];
}
