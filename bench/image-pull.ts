/**
 * Image pulls: skopeo copies one image (all layers to an OCI layout on disk)
 * straight from Debian's docker-registry, then through a kiln peer acting as its
 * registries.conf mirror: cold (the seed peer fetches from the registry) and warm
 * (a fresh peer finds every blob in the swarm); then several nodes pulling one
 * image at once, directly and each through its own peer. Same images, same run.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { podmanRegistriesConf } from "../src/cli/config.js";
import { buildOciImage, pushImage, startRegistry, type BuiltImage } from "../test/helpers/registry.js";
import type { BenchPeer } from "./cluster.js";
import { startCluster } from "./cluster.js";
import { BenchContainerd, containerdHostsDir, containerdMissing } from "./containerd.js";
import { REGISTRY_RTT_MS, rttMissing, rttRows, type RttRow } from "./image-pull-rtt.js";
import { log, onCleanup } from "./procs.js";
import type { Table } from "./table.js";
import { fmt, ratio } from "./util.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;

export interface ImagePullConfig {
  /** Total layer bytes (before gzip, random so gzip cannot shrink them). */
  imageMiB: number;
  layers: number;
  /** Nodes pulling a second image at once, each through its own peer. */
  nodes: number;
}

export interface ImageRow {
  path: string;
  /** Which anchor a row is measured against: `direct-1` for 1-node rows, `direct-n` for the many-nodes rows. */
  kind:
    | "direct-1"
    | "kiln-cold-1"
    | "kiln-warm-1"
    | "kiln-down-1"
    | "direct-n"
    | "kiln-n"
    | "ctr-direct-1"
    | "ctr-kiln-warm-1"
    | "ctr-kiln-down-1"
    | RttRow["kind"];
  ms: number;
  blobGets: number;
  ok: boolean;
}

export async function imagePullPhase(cfg: ImagePullConfig, tmp: string, failures: string[]): Promise<{ table: Table; rows: ImageRow[] }> {
  log(`image pull — ${cfg.imageMiB} MiB in ${cfg.layers} layers, skopeo as the client`);
  const layerBytes = Math.round((cfg.imageMiB * MiB) / cfg.layers);
  // A second image for the many-nodes rows, so that their kiln run starts cold too.
  const [image, crowdImage] = (await Promise.all([0, 1].map(() => buildOciImage({ platforms: ["linux/amd64"], layers: cfg.layers, layerBytes })))) as [
    BuiltImage,
    BuiltImage,
  ];
  const registry = await startRegistry("none");
  const unregister = onCleanup(async () => {
    await registry.stop();
    await Promise.all([image.cleanup(), crowdImage.cleanup()]);
  });
  const blobsOf = (img: BuiltImage) => [img.platforms["linux/amd64"]!.config, ...img.platforms["linux/amd64"]!.layers];
  const blobGets = () => [...blobsOf(image), ...blobsOf(crowdImage)].reduce((sum, d) => sum + registry.blobGets(d), 0);
  try {
    await pushImage(image, registry, "bench/app");
    await pushImage(crowdImage, registry, "bench/crowd");
    const rows: ImageRow[] = [];
    let ctrNote = "ctr rows: containerd with its own root and socket, `ctr images pull --snapshotter native` (pull and unpack).";
    let pulls = 0;
    const skopeo = async (label: string, repo: string, extra: string[]): Promise<boolean> => {
      const out = join(tmp, `pull-${pulls++}`);
      try {
        await run("skopeo", ["--insecure-policy", ...extra, "copy", "--src-tls-verify=false", `docker://${registry.host}/${repo}:v1`, `oci:${out}:v1`], {
          timeout: 600_000,
        });
        return true;
      } catch (err) {
        failures.push(`image pull ${label}: ${(err as Error & { stderr?: string }).stderr ?? (err as Error).message}`);
        return false;
      }
    };
    /** One row: `clients` skopeo processes at once; the time is the slowest one's. */
    const measure = async (label: string, kind: ImageRow["kind"], repo: string, clients: string[][]) => {
      log(label);
      const before = blobGets();
      const t0 = performance.now();
      const ok = (await Promise.all(clients.map((extra) => skopeo(label, repo, extra)))).every(Boolean);
      rows.push({ path: label, kind, ms: performance.now() - t0, blobGets: blobGets() - before, ok });
      log(`  ${(performance.now() - t0).toFixed(0)} ms`);
    };
    const viaPeer = async (peer: BenchPeer): Promise<string[]> => {
      const conf = join(tmp, `registries-${peer.name}.conf`);
      await writeFile(conf, podmanRegistriesConf({ peer: peer.proxyUrl, registry: registry.host }).content);
      return ["--registries-conf", conf];
    };

    await measure("1 node, direct (skopeo ← registry)", "direct-1", "bench/app", [[]]);
    // A third peer at least: it holds none of the first image's blobs when ctr pulls it through that peer.
    const names = Array.from({ length: Math.max(3, cfg.nodes) }, (_, i) => `peer-${i + 1}`);
    const cluster = await startCluster(names, ["--registry", registry.url]);
    try {
      await measure("1 node, kiln cold (skopeo ← peer ← seed ← registry)", "kiln-cold-1", "bench/app", [await viaPeer(cluster.peers[0]!)]);
      await measure("1 node, kiln warm (skopeo ← fresh peer ← swarm)", "kiln-warm-1", "bench/app", [await viaPeer(cluster.peers[1]!)]);
      await measure(
        `${cfg.nodes} nodes at once, direct`,
        "direct-n",
        "bench/crowd",
        Array.from({ length: cfg.nodes }, () => []),
      );
      const crowd = await Promise.all(cluster.peers.slice(0, cfg.nodes).map(viaPeer));
      await measure(`${cfg.nodes} nodes at once, kiln cold (one peer each)`, "kiln-n", "bench/crowd", crowd);
      const noCtr = await containerdMissing();
      if (noCtr) ctrNote = `ctr rows left out: ${noCtr}.`;
      else {
        const ctrRow = async (label: string, kind: ImageRow["kind"], extra: string[]) => {
          log(label);
          const c = new BenchContainerd(join(tmp, `containerd-${kind}`));
          const before = blobGets();
          try {
            await c.start();
            const ms = await c.pull(`${registry.host}/bench/app:v1`, extra);
            rows.push({ path: label, kind, ms, blobGets: blobGets() - before, ok: true });
            log(`  ${ms.toFixed(0)} ms`);
          } catch (err) {
            failures.push(`image pull ${label}: ${(err as Error & { stderr?: string }).stderr ?? (err as Error).message}`);
            rows.push({ path: label, kind, ms: NaN, blobGets: blobGets() - before, ok: false });
          } finally {
            await c.stop();
          }
        };
        await ctrRow("1 node, direct (ctr ← registry)", "ctr-direct-1", []);
        const hosts = await containerdHostsDir(join(tmp, "ctr-hosts"), cluster.peers[2]!.proxyUrl, registry.host);
        await ctrRow("1 node, kiln warm (ctr ← fresh peer ← swarm)", "ctr-kiln-warm-1", ["--hosts-dir", hosts]);
        await registry.stop();
        await ctrRow("1 node, registry down (ctr ← warm peer ← swarm; tag from its memory)", "ctr-kiln-down-1", ["--hosts-dir", hosts]);
      }
      // The registry is stopped (with or without ctr): the peer that pulled warm answers the tag from memory.
      await registry.stop();
      await measure("1 node, registry down (skopeo ← warm peer ← swarm; tag from its memory)", "kiln-down-1", "bench/app", [await viaPeer(cluster.peers[1]!)]);
    } finally {
      await cluster.stop();
    }
    const noRtt = await rttMissing();
    let rttNote = `rows with the registry ${REGISTRY_RTT_MS} ms RTT away left out: ${noRtt}`;
    if (!noRtt) {
      try {
        const rtt = await rttRows(image, tmp, failures);
        rows.push(...rtt.rows);
        rttNote = `rows "registry ${REGISTRY_RTT_MS} ms RTT away": docker-registry in its own network namespace behind a 1 Gbit link (tc tbf), ${REGISTRY_RTT_MS} ms RTT to every other node (${rtt.delay}); the node, a second node, the seed and the scheduler in theirs, 1 Gbit each, no added delay; same image (pushed under bench/rtt).`;
      } catch (err) {
        failures.push(`image pull, registry ${REGISTRY_RTT_MS} ms RTT away: ${(err as Error).message}`);
        rttNote = `rows with the registry ${REGISTRY_RTT_MS} ms RTT away failed: ${(err as Error).message}`;
      }
    }
    const anchorKind = (k: ImageRow["kind"]) =>
      k.startsWith("rtt-") ? "rtt-direct-1" : k.startsWith("ctr-") ? "ctr-direct-1" : k.endsWith("-n") ? "direct-n" : "direct-1";
    const anchorMs = (r: ImageRow) => rows.find((a) => a.kind === anchorKind(r.kind))?.ms ?? NaN;
    const table: Table = {
      title: `Image pull: skopeo (and ctr) pull a ${cfg.imageMiB} MiB image (${cfg.layers} layers) from docker-registry on loopback`,
      headers: ["path", "time (s)", "÷ direct", "registry blob GETs", "ok"],
      numeric: [false, true, true, true, false],
      rows: rows.map((r) => [r.path, fmt(r.ms / 1000, 2), ratio(r.ms, anchorMs(r)), String(r.blobGets), r.ok ? "yes" : "NO"]),
      notes: [
        `${blobsOf(image).length} blobs per pull (config + layers); skopeo verifies every digest and writes an OCI layout to disk in every row.`,
        "kiln rows: the peer is the registry's mirror (registries.conf, as Podman uses it); manifests by tag are asked of the registry, manifests by digest and blobs come through P2P.",
        "registry down rows: docker-registry stopped after the warm rows; the peer that pulled warm answers the tag from its memory (marked stale), everything else comes from the swarm.",
        rttNote,
        "The registry is unthrottled on loopback and every node shares this machine's 2 cores, so direct is the floor for time here; kiln's gain is the registry GETs it saves per extra node.",
        `the ${cfg.nodes}-node rows pull a second image of the same size (so the kiln run starts cold); their time is the slowest node's.`,
        "÷ direct: time ÷ the direct row of the same client with as many nodes (lower is better).",
        ctrNote,
      ],
    };
    return { table, rows };
  } finally {
    unregister();
    await registry.stop();
    await Promise.all([image.cleanup(), crowdImage.cleanup()]);
  }
}
