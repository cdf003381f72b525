/**
 * The BitTorrent anchor for the swarm: one aria2c seeder holding the file,
 * capped at the origin's rate, an opentracker, and N aria2c leechers started at
 * once on the nodes kiln's peers ran on. DHT, LPD and PEX are off: peers meet
 * only through the tracker. Every leecher keeps seeding until the last one is
 * done (as BitTorrent clients do); a hook stamps the time each one completes.
 * Debian's aria2, opentracker and mktorrent are installed when missing.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { machineCpu, processCpu, type MachineCpu } from "./cpu.js";
import { log, onCleanup, peakRss, spawnTracked, trackTempDir } from "./procs.js";
import { BenchSetupError, controlPlaneCommand, type BenchHost } from "./topology.js";

const run = promisify(execFile);

const TOOLS: Record<string, string> = { aria2c: "aria2", opentracker: "opentracker", mktorrent: "mktorrent" };

/** Installs Debian's aria2, opentracker and mktorrent if any of their commands is missing. */
export async function ensureBitTorrentTools(): Promise<void> {
  const missing: string[] = [];
  for (const cmd of Object.keys(TOOLS)) {
    try {
      await run("sh", ["-c", `command -v ${cmd}`]);
    } catch {
      missing.push(cmd);
    }
  }
  if (!missing.length) return;
  const pkgs = [...new Set(missing.map((c) => TOOLS[c]!))];
  if (process.getuid?.() !== 0) throw new BenchSetupError(`the BitTorrent row needs ${missing.join(", ")}: run apt-get install -y ${pkgs.join(" ")} as root`);
  log(`BitTorrent row: ${missing.join(", ")} missing; running apt-get update && apt-get install -y ${pkgs.join(" ")}`);
  try {
    await run("sh", ["-c", `apt-get update && apt-get install -y ${pkgs.join(" ")}`], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    const last = (e.stderr ?? e.message).trim().split("\n").pop();
    throw new BenchSetupError(`the BitTorrent row needs ${pkgs.join(" ")}, and apt-get install failed: ${last}`);
  }
}

/** SHA-1 of the bencoded `info` dictionary of a .torrent file (what the tracker whitelists). */
export function infoHash(torrent: Buffer): Buffer {
  let i = 0;
  const skip = (): void => {
    const c = torrent[i];
    if (c === 0x69)
      i = torrent.indexOf(0x65, i) + 1; // i<int>e
    else if (c === 0x6c || c === 0x64) {
      i++; // l...e, d...e
      while (torrent[i] !== 0x65) {
        if (i >= torrent.length) throw new Error("truncated torrent");
        skip();
      }
      i++;
    } else {
      const colon = torrent.indexOf(0x3a, i);
      if (colon < 0) throw new Error("malformed torrent");
      i = colon + 1 + Number(torrent.subarray(i, colon).toString("latin1"));
    }
  };
  if (torrent[0] !== 0x64) throw new Error("a torrent is a bencoded dictionary");
  i = 1;
  while (i < torrent.length && torrent[i] !== 0x65) {
    const colon = torrent.indexOf(0x3a, i);
    const key = torrent.subarray(colon + 1, colon + 1 + Number(torrent.subarray(i, colon).toString("latin1"))).toString("latin1");
    skip();
    const valueStart = i;
    skip();
    if (key === "info") return createHash("sha1").update(torrent.subarray(valueStart, i)).digest();
  }
  throw new Error("torrent has no info dictionary");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface BtRole {
  cpuS: number;
  inBytes: number;
  outBytes: number;
  /** VmHWM in bytes. */
  peakRss: number;
}

export interface BtResult {
  completionMs: number;
  /** Per leecher: start → its download complete; NaN if it never completed. */
  clientMs: number[];
  /** Per leecher: completed, and its copy matched the payload's sha256. */
  clientOk: boolean[];
  seeder: BtRole;
  leechers: BtRole[];
  tracker: BtRole;
  machine: MachineCpu;
  wallS: number;
  pieceLength: number;
}

export interface BtConfig {
  /** Names the run in failures. */
  label: string;
  file: string;
  size: number;
  sha: string;
  seederHost: BenchHost;
  trackerHost: BenchHost;
  leecherHosts: BenchHost[];
  uploadBytesPerSec: number;
  timeoutMs: number;
  failures: string[];
}

interface Aria {
  proc: ChildProcess;
  host: BenchHost;
  rpcPort: number;
  exited: Promise<void>;
}

const PIECE_LENGTH_LOG2 = 20; // 1 MiB pieces: mktorrent's usual choice for files of this size

function ariaArgs(dir: string, port: number, rpcPort: number): string[] {
  return [
    `--dir=${dir}`,
    `--listen-port=${port}`,
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--disable-ipv6=true",
    "--seed-ratio=0.0", // seed until stopped
    "--file-allocation=none",
    "--check-integrity=false",
    "--bt-save-metadata=false",
    "--auto-file-renaming=false",
    "--allow-overwrite=true",
    "--summary-interval=0",
    "--console-log-level=warn",
    "--enable-rpc=true",
    `--rpc-listen-port=${rpcPort}`,
    "--rpc-listen-all=false",
    `--stop-with-process=${process.pid}`,
  ];
}

function startAria(host: BenchHost, args: string[], rpcPort: number, env: NodeJS.ProcessEnv, label: string, failures: string[]): Aria {
  const [cmd, a] = host.command("aria2c", args);
  const proc = spawnTracked(cmd, a, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => (out = (out + d).slice(-4096));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) =>
    proc.once("exit", (code, signal) => {
      if (code !== 0 && signal === null && code !== null) {
        failures.push(`${label}: aria2c exited ${code}: ${out.trim().split("\n").slice(-3).join(" | ")}`);
      }
      resolve();
    }),
  );
  return { proc, host, rpcPort, exited };
}

/** Bytes a live aria2c has uploaded and downloaded, from its JSON-RPC (NaN if it does not answer). */
async function ariaBytes(a: Aria): Promise<{ up: number; down: number }> {
  try {
    const body = JSON.stringify({ jsonrpc: "2.0", id: "bench", method: "aria2.tellActive", params: [["uploadLength", "completedLength"]] });
    type TellActive = { result?: { uploadLength: string; completedLength: string }[] };
    const res = JSON.parse(await a.host.httpText(`http://127.0.0.1:${a.rpcPort}/jsonrpc`, body)) as TellActive;
    const items = res.result ?? [];
    return { up: items.reduce((s, x) => s + Number(x.uploadLength), 0), down: items.reduce((s, x) => s + Number(x.completedLength), 0) };
  } catch {
    return { up: NaN, down: NaN };
  }
}

async function stopAria(a: Aria): Promise<void> {
  if (a.proc.exitCode !== null || a.proc.signalCode !== null) return;
  a.proc.kill("SIGTERM");
  const t = setTimeout(() => a.proc.kill("SIGKILL"), 10_000);
  await a.exited;
  clearTimeout(t);
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) h.update(c as Buffer);
  return h.digest("hex");
}

export async function bitTorrentRun(cfg: BtConfig): Promise<BtResult> {
  await ensureBitTorrentTools();
  // opentracker drops privileges to nobody and chroots: its files must be world-readable.
  const dir = await mkdtemp(join(os.tmpdir(), "kiln-bench-bt-"));
  trackTempDir(dir);
  await chmod(dir, 0o755);
  const torrentPath = join(dir, "payload.torrent");
  const trackerPort = await freePort();
  const announce = `http://${cfg.trackerHost.ip}:${trackerPort}/announce`;
  log(`BitTorrent: mktorrent (${2 ** PIECE_LENGTH_LOG2 / 1024} KiB pieces), opentracker at ${announce}`);
  await run("mktorrent", ["-a", announce, "-l", String(PIECE_LENGTH_LOG2), "-o", torrentPath, cfg.file], { maxBuffer: 16 * 1024 * 1024 });
  const hash = infoHash(await readFile(torrentPath));
  await writeFile(join(dir, "whitelist.txt"), `${hash.toString("hex")}\n`, { mode: 0o644 });
  await chmod(torrentPath, 0o644);
  const hook = join(dir, "done.sh");
  await writeFile(hook, '#!/bin/sh\ndate +%s%N > "$KILN_BENCH_BT_DONE"\n', { mode: 0o755 });

  const [tcmd, targs] = cfg.trackerHost.command(
    ...controlPlaneCommand(cfg.trackerHost, true, "opentracker", ["-i", cfg.trackerHost.ip, "-p", String(trackerPort), "-d", dir, "-w", "whitelist.txt"]),
  );
  const tracker = spawnTracked(tcmd, targs, { stdio: ["ignore", "ignore", "pipe"] });
  let trackerErr = "";
  tracker.stderr!.on("data", (d: Buffer) => (trackerErr = (trackerErr + d).slice(-2048)));
  const trackerExited = new Promise<void>((r) => tracker.once("exit", () => r()));
  const arias: Aria[] = [];
  const stopAll = async () => {
    await Promise.all(arias.map(stopAria));
    if (tracker.exitCode === null && tracker.signalCode === null) {
      tracker.kill("SIGTERM");
      await trackerExited;
    }
  };
  const unregister = onCleanup(stopAll);
  try {
    const seedPort = await freePort();
    const seedRpc = await freePort();
    const seeder = startAria(
      cfg.seederHost,
      [
        ...ariaArgs(dirname(cfg.file), seedPort, seedRpc),
        "--bt-seed-unverified=true",
        `--max-overall-upload-limit=${Math.round(cfg.uploadBytesPerSec)}`,
        torrentPath,
      ],
      seedRpc,
      process.env,
      `${cfg.label}: BitTorrent seeder`,
      cfg.failures,
    );
    arias.push(seeder);
    // Wait until the tracker lists the seeder, so every leecher finds it on its first announce.
    const scrape = `http://${cfg.trackerHost.ip}:${trackerPort}/scrape?info_hash=${[...hash].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = await cfg.seederHost.httpText(scrape).catch((e: Error) => e.message);
      if (/8:completei[1-9]/.test(text)) break;
      if (tracker.exitCode !== null) throw new Error(`opentracker exited ${tracker.exitCode}: ${trackerErr.trim()}`);
      if (seeder.proc.exitCode !== null) throw new Error("the aria2c seeder exited before the tracker listed it");
      if (Date.now() > deadline) throw new Error(`the tracker did not list the seeder within 30 s (last scrape: ${text.slice(0, 200)})`);
      await sleep(200);
    }

    const doneFiles = cfg.leecherHosts.map((_, i) => join(dir, `done-${i}`));
    const leechDirs = cfg.leecherHosts.map((_, i) => join(dir, `leecher-${i}`));
    await Promise.all(leechDirs.map((d) => mkdir(d, { recursive: true })));
    const ports = await Promise.all(cfg.leecherHosts.flatMap(() => [freePort(), freePort()]));
    const seederCpu0 = processCpu(seeder.proc.pid);
    const trackerCpu0 = processCpu(tracker.pid);
    const machine0 = machineCpu();
    log(`BitTorrent: ${cfg.leecherHosts.length} aria2c leechers at once`);
    const t0 = Date.now();
    const leechers = cfg.leecherHosts.map((h, i) =>
      startAria(
        h,
        [...ariaArgs(leechDirs[i]!, ports[2 * i]!, ports[2 * i + 1]!), `--on-bt-download-complete=${hook}`, torrentPath],
        ports[2 * i + 1]!,
        { ...process.env, KILN_BENCH_BT_DONE: doneFiles[i] },
        `${cfg.label}: BitTorrent leecher ${i + 1}`,
        cfg.failures,
      ),
    );
    arias.push(...leechers);
    const doneAt: number[] = cfg.leecherHosts.map(() => NaN);
    let lastLog = Date.now();
    while (Date.now() - t0 < cfg.timeoutMs) {
      await Promise.all(
        doneFiles.map(async (f, i) => {
          if (Number.isFinite(doneAt[i]!)) return;
          const ns = await readFile(f, "utf8").catch(() => "");
          if (/^\d+\s*$/.test(ns)) doneAt[i] = Number(BigInt(ns.trim()) / 1000n) / 1000;
        }),
      );
      const pending = doneAt.filter((t, i) => !Number.isFinite(t) && leechers[i]!.proc.exitCode === null && leechers[i]!.proc.signalCode === null);
      if (!pending.length) break;
      if (Date.now() - lastLog > 10_000) {
        log(`  BitTorrent: ${doneAt.filter(Number.isFinite).length}/${leechers.length} done`);
        lastLog = Date.now();
      }
      await sleep(100);
    }
    const tEnd = Date.now();
    const machine1 = machineCpu();
    const cpu = (a: Aria) => processCpu(a.proc.pid);
    const seederRole: BtRole = { cpuS: cpu(seeder) - seederCpu0, inBytes: 0, outBytes: NaN, peakRss: peakRss(seeder.proc.pid) };
    const trackerRole: BtRole = { cpuS: processCpu(tracker.pid) - trackerCpu0, inBytes: 0, outBytes: 0, peakRss: peakRss(tracker.pid) };
    const leecherRoles: BtRole[] = leechers.map((l) => ({ cpuS: cpu(l), inBytes: NaN, outBytes: NaN, peakRss: peakRss(l.proc.pid) }));
    const bytes = await Promise.all([seeder, ...leechers].map(ariaBytes));
    seederRole.outBytes = bytes[0]!.up;
    for (const [i, r] of leecherRoles.entries()) {
      r.inBytes = bytes[i + 1]!.down;
      r.outBytes = bytes[i + 1]!.up;
    }
    const clientMs = doneAt.map((t) => t - t0);
    for (const [i, ms] of clientMs.entries()) {
      if (Number.isFinite(ms)) continue;
      const why = leechers[i]!.proc.exitCode === null ? `within ${cfg.timeoutMs} ms` : "(its aria2c exited: see its own line)";
      cfg.failures.push(`${cfg.label}: BitTorrent leecher ${i + 1} did not complete ${why}`);
    }
    await stopAll();
    const clientOk: boolean[] = [];
    for (const [i, d] of leechDirs.entries()) {
      const out = join(d, basename(cfg.file));
      const completed = Number.isFinite(clientMs[i]!);
      const got = completed ? await fileSha256(out).catch((e: Error) => `unreadable (${e.message})`) : "";
      clientOk.push(completed && got === cfg.sha);
      if (completed && got !== cfg.sha) cfg.failures.push(`${cfg.label}: BitTorrent leecher ${i + 1}: ${out} has sha256 ${got}, expected ${cfg.sha}`);
      await rm(d, { recursive: true, force: true });
    }
    return {
      completionMs: Math.max(...clientMs),
      clientMs,
      clientOk,
      seeder: seederRole,
      leechers: leecherRoles,
      tracker: trackerRole,
      machine: { busy: machine1.busy - machine0.busy, total: machine1.total - machine0.total },
      wallS: (tEnd - t0) / 1000,
      pieceLength: 2 ** PIECE_LENGTH_LOG2,
    };
  } finally {
    unregister();
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}
