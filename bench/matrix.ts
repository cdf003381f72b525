/**
 * The swarm phase over every (link profile, node count): a fresh topology per
 * run (in multi-host mode: namespaces for exactly that many nodes, links at that
 * profile's rate), one payload per file size. A run that cannot even start (the
 * namespaces, the origin) is recorded and the next one still runs.
 */
import { join } from "node:path";
import { isStopping, log } from "./procs.js";
import { cellName, profileName, type SwarmCell } from "./summary.js";
import { SYSTEMS, missingRow, swarmLimit, swarmPhase, type SwarmResult, type System } from "./swarm.js";
import { loopbackTopology, netnsTopology, type Topology } from "./topology.js";
import { MB, MiB, fmt, makePayload } from "./util.js";

export interface MatrixConfig {
  netns: boolean;
  /** Node counts, and the file size for each (same order). */
  peers: number[];
  sizesMiB: number[];
  /** Link profiles in Mbit/s (multi-host mode; ignored on loopback). */
  linkMbits: number[];
  originMBps: number;
  /** Direct (N × curl from the origin) runs up to this many nodes. */
  directMaxPeers: number;
  /** The systems compared in each cell (all unless BENCH_SWARM_SYSTEMS narrows them for a quicker look). */
  systems: readonly System[];
  tmp: string;
  failures: string[];
}

export interface Payload {
  file: string;
  sha: string;
}

/** Random payloads of a given size, each written once under `dir`. */
export function payloadSource(dir: string): (sizeMiB: number) => Promise<Payload> {
  const made = new Map<number, Promise<Payload>>();
  return (sizeMiB) => {
    let p = made.get(sizeMiB);
    if (!p) {
      const file = join(dir, `payload-${sizeMiB}MiB.bin`);
      log(`writing a ${sizeMiB} MiB random payload to ${file}`);
      p = makePayload(file, Math.round(sizeMiB * MiB)).then((sha) => ({ file, sha }));
      made.set(sizeMiB, p);
    }
    return p;
  };
}

/**
 * The swarm's nodes: each gets a namespace. The source side of each system sits on a
 * link capped at the origin's rate: the origin and the BitTorrent seeder (which is
 * BitTorrent's origin), and kiln's seed peer (which fetches from the origin and hands
 * each piece out first). Every node that downloads gets the node link.
 */
function swarmTopology(peers: number, linkMbit: number, originMBps: number): Promise<Topology> {
  const originMbit = Math.round((originMBps * MB * 8) / 1e6);
  return netnsTopology([
    { name: "origin", mbit: originMbit },
    { name: "bt-seed", mbit: originMbit },
    { name: "scheduler", mbit: linkMbit },
    { name: "tracker", mbit: linkMbit },
    { name: "seed", mbit: originMbit },
    ...Array.from({ length: peers }, (_, i) => ({ name: `peer-${i + 1}`, mbit: linkMbit })),
  ]);
}

function failedResult(peers: number, size: number, limit: Pick<SwarmResult, "limitMs" | "limitBy">, reason: string): SwarmResult {
  const rows = SYSTEMS.map((system) => missingRow(system, `failed: ${reason}`));
  return { peers, size, rows, roles: [], machine: {}, notes: [], ...limit, delivered: peers * size };
}

async function runCell(cfg: MatrixConfig, linkMbit: number | undefined, peers: number, sizeMiB: number, payload: Payload): Promise<SwarmCell> {
  const size = Math.round(sizeMiB * MiB);
  const label = `${profileName(linkMbit)}, ${peers} nodes × ${sizeMiB} MiB`;
  const originBytesPerSec = cfg.originMBps * MB;
  const directS = (peers * size) / originBytesPerSec;
  const skip: Partial<Record<System, string>> = {};
  for (const system of SYSTEMS) if (!cfg.systems.includes(system)) skip[system] = "not in BENCH_SWARM_SYSTEMS";
  if (peers > cfg.directMaxPeers)
    skip.direct ??= `${peers} nodes > BENCH_DIRECT_MAX_PEERS=${cfg.directMaxPeers} (N copies through the origin: ≥ ${fmt(directS, 0)} s)`;
  const linkBytesPerSec = linkMbit === undefined ? undefined : (linkMbit * 1e6) / 8;
  let topology: Topology | undefined;
  try {
    topology = linkMbit === undefined ? loopbackTopology() : await swarmTopology(peers, linkMbit, cfg.originMBps);
    const result = await swarmPhase({
      label,
      peers,
      size,
      ...payload,
      tmp: cfg.tmp,
      originBytesPerSec,
      linkBytesPerSec,
      skip,
      topology,
      failures: cfg.failures,
    });
    return { linkMbit, links: topology.describe(), result };
  } catch (err) {
    const reason = (err as Error).message.trim().split("\n")[0]!;
    log(`swarm run ${label} failed: ${(err as Error).stack ?? reason}`);
    cfg.failures.push(`${label}: the run could not start: ${reason}`);
    return { linkMbit, links: topology?.describe() ?? "", result: failedResult(peers, size, swarmLimit(size, originBytesPerSec, linkBytesPerSec), reason) };
  } finally {
    await topology?.close();
  }
}

/** Every profile (outer loop) × every node count; loopback has one profile, without link limits. */
export async function swarmMatrix(cfg: MatrixConfig, payloadFor: (sizeMiB: number) => Promise<Payload>): Promise<SwarmCell[]> {
  const profiles: (number | undefined)[] = cfg.netns ? cfg.linkMbits : [undefined];
  const total = profiles.length * cfg.peers.length;
  const cells: SwarmCell[] = [];
  for (const linkMbit of profiles) {
    for (const [i, peers] of cfg.peers.entries()) {
      if (isStopping()) return cells;
      const sizeMiB = cfg.sizesMiB[i]!;
      log(`swarm run ${cells.length + 1}/${total}: ${profileName(linkMbit)}, ${peers} nodes × ${sizeMiB} MiB, origin capped at ${cfg.originMBps} MB/s total`);
      const cell = await runCell(cfg, linkMbit, peers, sizeMiB, await payloadFor(sizeMiB));
      log(`swarm run ${cellName(cell)} (${profileName(linkMbit)}) done`);
      cells.push(cell);
    }
  }
  return cells;
}
