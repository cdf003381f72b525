/** The simulator's scenarios: the default run (scale) and the bench's 32-node cells (validation). */
import { MiB, scenarioDefaults, type Scenario } from "./swarm.js";

const GB = 1e9;

/** A datacenter: 1 Gbit node links, a 10 Gbit seed peer, the origin at 200 MB/s, one zone. */
const datacenter = { ...scenarioDefaults, linkMbit: 1000, seedLinkMbit: 10_000, originMBps: 200, feedBatchMs: 2 };

export const SCENARIOS: Scenario[] = [
  { ...datacenter, name: "100 nodes", nodes: 100, sizeBytes: 256 * MiB },
  { ...datacenter, name: "1,000 nodes", nodes: 1000, sizeBytes: 256 * MiB },
  { ...datacenter, name: "10,000 nodes", nodes: 10_000, sizeBytes: 256 * MiB, feedBatchMs: 10 },
  // Kraken's published shape: 3 GB to 2,600 hosts, 300 MB/s per agent (p50 10 s, p99 18 s there).
  {
    ...datacenter,
    name: "Kraken: 2,600 × 3 GB at 300 MB/s",
    nodes: 2600,
    sizeBytes: 3 * GB,
    linkMbit: 2400,
    seedLinkMbit: 25_000,
    originMBps: 1000,
    feedBatchMs: 5,
  },
  // An AI image: 10 GB to 1,000 nodes in 3 zones (IDCs), 30 ms between zones; origin and seed in zone 0.
  { ...datacenter, name: "10 GB to 1,000 nodes, 3 zones", nodes: 1000, sizeBytes: 10 * GB, zones: 3, linkMbit: 10_000, seedLinkMbit: 25_000, originMBps: 1000 },
  { ...datacenter, name: "1,000 nodes, 5% fail mid-download", nodes: 1000, sizeBytes: 256 * MiB, failFraction: 0.05 },
  { ...datacenter, name: "1,000 nodes arriving over 60 s", nodes: 1000, sizeBytes: 256 * MiB, arrivalSpreadMs: 60_000 },
  { ...datacenter, name: "1,000 nodes, 10% on 100 Mbit links", nodes: 1000, sizeBytes: 256 * MiB, slowFraction: 0.1, slowFactor: 10 },
];

/**
 * The bench's multi-host cells (bench/topology.ts, BENCH_NETNS=1): 32 nodes × 128 MiB,
 * node links of 1 Gbit or 40 Mbit each way, the origin capped at 50 MB/s, the seed peer
 * on the origin-side 400 Mbit link, one bridge (sub-millisecond RTT), every client a
 * `kiln get` process. "+ testbed CPU": the bench's 2 cores shared by every process,
 * each `kiln get` starting up for its measured CPU, each MiB delivered costing the CPU
 * the bench measured per MiB for that profile (peers, seed, scheduler and origin
 * together ÷ MiB delivered): a fitted constant per profile, not a prediction.
 */
const benchCell = { ...scenarioDefaults, nodes: 32, sizeBytes: 128 * MiB, originMBps: 50, seedLinkMbit: 400, rttSameZoneMs: 0.2 };

/** From bench/results/latest-netns.md (77ca21e): CPU seconds by role in the 32 × 128 MiB cells. */
export const BENCH_CPU = {
  "1000": { peers: 24.3, seed: 1.5, scheduler: 1.17, origin: 0.41, clients: 4.4 },
  "40": { peers: 57.6, seed: 2.0, scheduler: 2.27, origin: 0.37, clients: 4.9 },
} as const;

function testbedCpu(profile: keyof typeof BENCH_CPU): { cpu: { cores: number; msPerMiB: number }; clientStartCpuMs: number } {
  const c = BENCH_CPU[profile];
  const delivered = 32 * 128;
  return { cpu: { cores: 2, msPerMiB: ((c.peers + c.seed + c.scheduler + c.origin) * 1000) / delivered }, clientStartCpuMs: (c.clients * 1000) / 32 };
}

/** What the bench measured in the same cells (bench/results/latest-netns.md, 77ca21e: 4 upload slots + a line of 4). */
export const BENCH_FIGURES = {
  "1000": { run: "latest-netns.md (77ca21e, 4 slots + a line of 4)", p50: 16.5, max: 17.0, origin: 1.0, seed: 3.25 },
  "40": { run: "latest-netns.md (77ca21e, 4 slots + a line of 4)", p50: 42.5, max: 50.9, origin: 1.0, seed: 3.22 },
} as const;

/**
 * Each cell twice: with main's upload line (4 slots + a line of 4, the build the bench
 * figures are from) and busy at once (4 slots, no line, as builds before 9433049), both
 * with and without the testbed's CPU.
 */
export const VALIDATION: Scenario[] = (["1000", "40"] as const).flatMap((profile) => {
  const link = profile === "40" ? "40 Mbit" : "1 Gbit";
  const linkMbit = profile === "40" ? 40 : 1000;
  return [
    { ...benchCell, name: `bench 32 × 128 MiB, ${link}, busy at once`, linkMbit, uploadQueue: 0 },
    { ...benchCell, name: `bench 32 × 128 MiB, ${link}, busy at once + testbed CPU`, linkMbit, uploadQueue: 0, ...testbedCpu(profile) },
    { ...benchCell, name: `bench 32 × 128 MiB, ${link}, line of 4`, linkMbit },
    { ...benchCell, name: `bench 32 × 128 MiB, ${link}, line of 4 + testbed CPU`, linkMbit, ...testbedCpu(profile) },
  ];
});

export function findScenarios(names: string[]): Scenario[] {
  const all = [...SCENARIOS, ...VALIDATION];
  return names.map((name) => {
    const s = all.find((x) => x.name === name) ?? all.find((x) => x.name.toLowerCase().includes(name.toLowerCase()));
    if (!s) throw new Error(`no scenario named ${name}; --list shows them`);
    return s;
  });
}
