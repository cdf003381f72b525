/**
 * Image pull rows with the registry away from the node: docker-registry in
 * its own network namespace behind a 1 Gbit link (tc tbf) with 20 ms RTT to every
 * other node; the pulling node, a second node, the seed peer and the scheduler each
 * in their own namespace on one bridge (1 Gbit each, no added delay: one rack).
 * skopeo pulls directly, through the node's peer cold, through a fresh peer warm (the
 * swarm holds the image), through that peer again (it holds the image), and with the
 * registry stopped (the warm peer answers the tag from memory). Needs root,
 * ip and tc.
 *
 * The delay: `tc netem` where the kernel has it (sch_netem); else (this machine's
 * kernel has neither netem nor fq) a userspace relay in the registry's namespace
 * (delay-relay.ts): 10 ms each way per chunk, one more round trip per new connection,
 * no slow start.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { podmanRegistriesConf } from "../src/cli/config.js";
import type { BuiltImage } from "../test/helpers/registry.js";
import { startCluster, type BenchPeer } from "./cluster.js";
import { log, onCleanup, spawnTracked } from "./procs.js";
import { checkNetnsPrerequisites, netnsTopology, type BenchHost } from "./topology.js";

const run = promisify(execFile);

export const REGISTRY_RTT_MS = 20;
const LINK_MBIT = 1000;
const REGISTRY_PORT = 5000;
/** Where docker-registry itself listens inside its namespace when the relay is in front of it. */
const BEHIND_RELAY_PORT = 5001;

export interface RttRow {
  path: string;
  kind: "rtt-direct-1" | "rtt-kiln-cold-1" | "rtt-kiln-warm-1" | "rtt-kiln-local-1" | "rtt-kiln-down-1";
  ms: number;
  blobGets: number;
  ok: boolean;
}

/** Why the rows cannot run here, or undefined. */
export async function rttMissing(): Promise<string | undefined> {
  try {
    await checkNetnsPrerequisites();
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

/** Adds the round trip to the registry's node: netem on its link when the kernel has it, else the relay. How it was done. */
async function addRegistryDelay(host: BenchHost): Promise<{ how: string; relay?: ChildProcess }> {
  const [tcCmd, tcArgs] = host.command("tc", [
    "qdisc",
    "replace",
    "dev",
    "eth0",
    "root",
    "netem",
    "delay",
    `${REGISTRY_RTT_MS}ms`,
    "rate",
    `${LINK_MBIT}mbit`,
    "limit",
    "100000",
  ]);
  try {
    await run(tcCmd, tcArgs);
    return { how: `tc netem delay ${REGISTRY_RTT_MS}ms on the registry's egress` };
  } catch {
    /* no sch_netem in this kernel */
  }
  const script = fileURLToPath(new URL("./delay-relay.ts", import.meta.url));
  const [cmd, args] = host.command(process.execPath, [
    "--import",
    "tsx",
    script,
    host.ip,
    String(REGISTRY_PORT),
    "127.0.0.1",
    String(BEHIND_RELAY_PORT),
    String(REGISTRY_RTT_MS / 2),
  ]);
  const relay = spawnTracked(cmd, args, { stdio: ["ignore", "pipe", "inherit"], cwd: fileURLToPath(new URL("..", import.meta.url)) });
  await new Promise<void>((resolve, reject) => {
    relay.stdout!.once("data", () => resolve());
    relay.once("exit", (code) => reject(new Error(`delay relay exited with ${code}`)));
  });
  return {
    how: `no tc netem in this kernel: a userspace relay in the registry's namespace (bench/delay-relay.ts, ${REGISTRY_RTT_MS / 2} ms each way per chunk, one more round trip per new connection, no slow start)`,
    relay,
  };
}

/** docker-registry serving from `host`'s namespace at `addr`; its access log counted for blob GETs. */
async function startRegistryIn(host: BenchHost, dir: string, addr: string): Promise<{ blobGets(digests: string[]): number; stop(): Promise<void> }> {
  const config = `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
http:
  addr: ${addr}
  secret: kiln-bench-secret
`;
  await writeFile(join(dir, "config.yml"), config);
  const [cmd, args] = host.command("docker-registry", ["serve", join(dir, "config.yml")]);
  const proc: ChildProcess = spawnTracked(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const keep = (d: Buffer) => lines.push(...d.toString().split("\n").filter(Boolean));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  for (let i = 0; ; i++) {
    try {
      await host.httpText(`http://${addr}/v2/`);
      break;
    } catch {
      if (proc.exitCode !== null || i > 100) throw new Error(`docker-registry in its namespace did not start: ${lines.slice(-5).join(" | ")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const exited = new Promise((r) => proc.once("exit", r));
  return {
    blobGets: (digests) => lines.filter((l) => digests.some((d) => l.includes(`"GET /v2/`) && l.includes(`/blobs/${d} `))).length,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** The five rows, pulling `image` (pushed here under bench/rtt), and how the delay was made. */
export async function rttRows(image: BuiltImage, tmp: string, failures: string[]): Promise<{ rows: RttRow[]; delay: string }> {
  const topology = await netnsTopology(["scheduler", "seed", "peer-1", "peer-2", "registry"].map((name) => ({ name, mbit: LINK_MBIT })));
  const dir = await mkdtemp(join(os.tmpdir(), "kiln-bench-rtt-"));
  const rows: RttRow[] = [];
  let registry: Awaited<ReturnType<typeof startRegistryIn>> | undefined;
  let relay: ChildProcess | undefined;
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  const unregister = onCleanup(async () => {
    await cluster?.stop();
    await registry?.stop();
    relay?.kill("SIGTERM");
  });
  try {
    const regHost = topology.host("registry");
    const delay = await addRegistryDelay(regHost);
    relay = delay.relay;
    registry = await startRegistryIn(regHost, dir, relay ? `127.0.0.1:${BEHIND_RELAY_PORT}` : `${regHost.ip}:${REGISTRY_PORT}`);
    const registryUrl = `http://${regHost.ip}:${REGISTRY_PORT}`;
    const node = topology.host("peer-1");
    // Reachable from the node through the delay before anything is timed (a loaded machine starts slowly).
    for (let i = 0; ; i++) {
      try {
        await node.httpText(`${registryUrl}/v2/`);
        break;
      } catch (err) {
        if (i >= 30) throw new Error(`the registry is not reachable from the node at ${registryUrl}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const blobs = [image.platforms["linux/amd64"]!.config, ...image.platforms["linux/amd64"]!.layers];
    const [pushCmd, pushArgs] = node.command("skopeo", [
      "copy",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci:${image.layout}:${image.tag}`,
      `docker://${new URL(registryUrl).host}/bench/rtt:${image.tag}`,
    ]);
    await run(pushCmd, pushArgs, { timeout: 600_000 });
    const reg = registry;
    let pulls = 0;
    const pull = async (path: string, kind: RttRow["kind"], host: BenchHost, extra: string[]) => {
      log(path);
      const before = reg.blobGets(blobs);
      const out = join(tmp, `rtt-pull-${pulls++}`);
      const [c, a] = host.command("skopeo", [
        "--insecure-policy",
        ...extra,
        "copy",
        "--src-tls-verify=false",
        `docker://${new URL(registryUrl).host}/bench/rtt:${image.tag}`,
        `oci:${out}:v1`,
      ]);
      const t0 = performance.now();
      let ok = true;
      try {
        await run(c, a, { timeout: 600_000 });
      } catch (err) {
        ok = false;
        failures.push(`image pull ${path}: ${(err as Error & { stderr?: string }).stderr ?? (err as Error).message}`);
      }
      const ms = performance.now() - t0;
      rows.push({ path, kind, ms: ok ? ms : Number.NaN, blobGets: reg.blobGets(blobs) - before, ok });
      log(`  ${ms.toFixed(0)} ms`);
      await rm(out, { recursive: true, force: true });
    };
    const viaPeer = async (peer: BenchPeer): Promise<string[]> => {
      const conf = join(tmp, `rtt-registries-${peer.name}.conf`);
      await writeFile(conf, podmanRegistriesConf({ peer: peer.proxyUrl, registry: new URL(registryUrl).host }).content);
      return ["--registries-conf", conf];
    };
    await pull(`registry ${REGISTRY_RTT_MS} ms RTT away, direct (skopeo ← registry)`, "rtt-direct-1", node, []);
    cluster = await startCluster(["peer-1", "peer-2"], ["--registry", registryUrl], topology);
    const [p1, p2] = cluster.peers as [BenchPeer, BenchPeer];
    await pull(`registry ${REGISTRY_RTT_MS} ms RTT away, kiln cold (skopeo ← peer ← seed ← registry)`, "rtt-kiln-cold-1", node, await viaPeer(p1));
    await pull(
      `registry ${REGISTRY_RTT_MS} ms RTT away, kiln warm (skopeo ← fresh peer ← swarm)`,
      "rtt-kiln-warm-1",
      topology.host("peer-2"),
      await viaPeer(p2),
    );
    await pull(
      `registry ${REGISTRY_RTT_MS} ms RTT away, kiln warm on the node (skopeo ← its peer, which holds the image)`,
      "rtt-kiln-local-1",
      topology.host("peer-2"),
      await viaPeer(p2),
    );
    await registry.stop();
    await pull("registry down, kiln warm (skopeo ← peer ← swarm; tag from the peer's memory)", "rtt-kiln-down-1", topology.host("peer-2"), await viaPeer(p2));
    return { rows, delay: delay.how };
  } finally {
    unregister();
    await cluster?.stop();
    await registry?.stop();
    relay?.kill("SIGTERM");
    await topology.close();
    await rm(dir, { recursive: true, force: true });
  }
}
