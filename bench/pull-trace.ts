/**
 * Where the time of one warm skopeo pull goes: on loopback, docker-registry,
 * a scheduler, a seed peer and two peers; skopeo pulls an image directly, then through
 * peer 1 (cold), then through peer 2 (warm: every blob in the swarm), and the table
 * shows, per request peer 2 answered, when it arrived (from the first request of
 * the pull), when its download was under way (task registered), when its layout was
 * known, when the response head and the last byte left: from its debug log's
 * "proxy answer timings" lines.
 *
 *   node --import tsx bench/pull-trace.ts   (TRACE_MIB=256 TRACE_LAYERS=8 TRACE_RUNS=3; TRACE_PEER_ARGS="--no-prefetch-layers" for peer flags)
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { TestCluster, type PeerHandle } from "../test/helpers/cluster.js";
import { buildOciImage, pushImage, startRegistry } from "../test/helpers/registry.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const imageMiB = Number(process.env.TRACE_MIB ?? 256);
const layers = Number(process.env.TRACE_LAYERS ?? 8);
const runs = Number(process.env.TRACE_RUNS ?? 3);

interface Timing {
  time: number;
  method: string;
  path: string;
  action: string;
  status: number;
  registeredMs?: number;
  layoutMs?: number;
  accessMs?: number;
  headMs?: number;
  endMs: number;
}

const dir = await mkdtemp(join(tmpdir(), "kiln-pull-trace-"));
const image = await buildOciImage({ platforms: ["linux/amd64"], layers, layerBytes: Math.round((imageMiB * MiB) / layers) });
const registry = await startRegistry("none");
let cluster: TestCluster | undefined;
try {
  await pushImage(image, registry, "trace/app");
  let n = 0;
  const skopeo = async (host: string, repoRef: string): Promise<number> => {
    const t0 = performance.now();
    await run("skopeo", ["--insecure-policy", "copy", "--src-tls-verify=false", `docker://${host}/${repoRef}`, `oci:${join(dir, `out-${n++}`)}:v1`], {
      timeout: 600_000,
    });
    return performance.now() - t0;
  };
  const peerHost = (p: PeerHandle) => new URL(p.proxyUrl).host;
  const direct: number[] = [];
  const warm: number[] = [];
  const traces: Timing[][] = [];
  for (let r = 0; r < runs; r++) {
    direct.push(await skopeo(registry.host, "trace/app:v1"));
    const extra = process.env.TRACE_PEER_ARGS?.split(" ").filter(Boolean) ?? [];
    cluster = await TestCluster.start({ peerArgs: ["--registry", registry.url, ...extra], peerEnv: { KILN_LOG_LEVEL: "debug" } });
    await cluster.addPeer("seed", { seed: true });
    const [p1, p2] = [await cluster.addPeer("peer-1"), await cluster.addPeer("peer-2")];
    await skopeo(peerHost(p1), "trace/app:v1");
    const from = p2.proc.lines.length;
    warm.push(await skopeo(peerHost(p2), "trace/app:v1"));
    traces.push(
      p2.proc.lines
        .slice(from)
        .filter((l) => l.includes('"proxy answer timings"'))
        .map((l) => JSON.parse(l) as Timing),
    );
    await cluster.stop();
    cluster = undefined;
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`# warm skopeo pull of a ${imageMiB} MiB image in ${layers} layers, loopback, ${runs} runs`);
  console.log(`direct ${med(direct).toFixed(0)} ms (runs ${direct.map((x) => x.toFixed(0)).join(", ")})`);
  console.log(
    `warm through a peer ${med(warm).toFixed(0)} ms (runs ${warm.map((x) => x.toFixed(0)).join(", ")}), ÷ direct ${(med(warm) / med(direct)).toFixed(2)}`,
  );
  const last = traces[traces.length - 1] ?? [];
  const start = Math.min(...last.map((t) => t.time - t.endMs));
  console.log("\n| request (last run) | arrived | registered | layout | access | head out | last byte | status |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const t of [...last].sort((a, b) => a.time - b.time - (a.endMs - b.endMs))) {
    const arrived = t.time - t.endMs - start;
    const rel = (v?: number) => (v === undefined ? "" : (arrived + v).toFixed(0));
    const what = `${t.method} ${t.path.replace(/sha256:([a-f0-9]{12})[a-f0-9]+/, "sha256:$1…")}`;
    console.log(
      `| ${what} | ${arrived.toFixed(0)} | ${rel(t.registeredMs)} | ${rel(t.layoutMs)} | ${rel(t.accessMs)} | ${rel(t.headMs)} | ${rel(t.endMs)} | ${t.status} |`,
    );
  }
} finally {
  await cluster?.stop();
  await registry.stop();
  await image.cleanup();
  await rm(dir, { recursive: true, force: true });
}
