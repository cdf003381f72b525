/**
 * Image acceleration bench: time to a ready rootfs on a fresh node for an
 * image of many files, and the bytes the registry served for it, for
 *   - a normal pull (ctr images pull + unpack, containerd's overlayfs snapshotter),
 *   - a pull through a kiln peer mirror whose swarm already has the layers (+ unpack),
 *   - the accelerated target through kiln's snapshotter (ctr-remote rpull: no layer fetched, no unpack),
 * plus the one-time `kiln accelerate create`. Needs root, containerd, ctr-remote, setfattr.
 * Size: BENCH_ACCEL_FILES (default 20000) files over 4 layers, BENCH_ACCEL_MIB (default 200) MiB.
 * Run alone: node --import tsx bench/accelerate.ts
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { TestCluster } from "../test/helpers/cluster.js";
import { Containerd, createSnapshot } from "../test/helpers/containerd.js";
import { buildLayeredImage, type LayeredImage, type TarEntry } from "../test/helpers/layer-tar.js";
import { runKiln, spawnKiln, type KilnProcess } from "../test/helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../test/helpers/registry.js";
import { containerdHostsDir } from "./containerd.js";
import { toText, type Table } from "./table.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** Why this phase cannot run here, or undefined. */
export async function accelerationMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "needs root (containerd, overlay mounts, unpacking owners and devices)";
  for (const [c, pkg] of [
    ["containerd", "containerd"],
    ["ctr", "containerd"],
    ["ctr-remote", "stargz-snapshotter"],
    ["setfattr", "attr"],
    ["docker-registry", "docker-registry"],
    ["skopeo", "skopeo"],
  ]) {
    try {
      await run("sh", ["-c", `command -v ${c}`]);
    } catch {
      return `${c} is missing (apt-get install ${pkg})`;
    }
  }
  return undefined;
}

/** `files` files of random sizes (average size = total / files) spread over directories, in `layers` layers. */
function manyFileLayers(files: number, totalBytes: number, layers: number): TarEntry[][] {
  const avg = Math.max(1, Math.floor(totalBytes / files));
  const out: TarEntry[][] = [];
  for (let l = 0; l < layers; l++) {
    const entries: TarEntry[] = [{ type: "dir", path: `l${l}` }];
    const n = Math.floor(files / layers);
    for (let i = 0; i < n; i++) {
      if (i % 500 === 0) entries.push({ type: "dir", path: `l${l}/d${i / 500}` });
      entries.push({ type: "file", path: `l${l}/d${Math.floor(i / 500)}/f${i}`, data: randomBytes(Math.floor(avg * (0.5 + Math.random()))) });
    }
    out.push(entries);
  }
  return out;
}

interface Row {
  path: string;
  ms: number;
  registryBytes: number;
  /** Layer bytes that reached the node (its containerd content store), from the registry or the swarm. */
  nodeBytes?: number;
  note: string;
}

/** Layer blobs present in a containerd's content store, in bytes. */
async function contentBytes(c: Containerd, sizes: Map<string, number>, layers: string[]): Promise<number> {
  const have = new Set((await c.ctr(["content", "ls", "-q"])).stdout.split("\n").map((l) => l.trim()));
  return layers.filter((d) => have.has(d)).reduce((n, d) => n + (sizes.get(d) ?? 0), 0);
}

/** Bytes of the blobs (by digest → size) the registry served since `before` requests. */
function registryBytes(reg: TestRegistry, sizes: Map<string, number>, before: number): number {
  const gets = reg
    .requests()
    .slice(before)
    .filter((r) => r.startsWith("GET ") && r.includes("/blobs/"));
  return gets.reduce((n, r) => n + (sizes.get(r.slice(r.lastIndexOf("/") + 1)) ?? 0), 0);
}

export async function accelerationPhase(failures: string[] = []): Promise<Table[]> {
  const missing = await accelerationMissing();
  if (missing) {
    failures.push(`acceleration bench skipped: ${missing}`);
    return [];
  }
  const files = Number(process.env.BENCH_ACCEL_FILES ?? 20_000);
  const mib = Number(process.env.BENCH_ACCEL_MIB ?? 200);
  const dir = await mkdtemp(join(tmpdir(), "kiln-bench-accel-"));
  const shared = join(dir, "shared");
  const containerds: Containerd[] = [];
  const procs: KilnProcess[] = [];
  let reg: TestRegistry | undefined;
  let cluster: TestCluster | undefined;
  let image: LayeredImage | undefined;
  const rows: Row[] = [];
  try {
    image = await buildLayeredImage(manyFileLayers(files, mib * MiB, 4));
    reg = await startRegistry("none");
    await pushImage(image, reg, "bench/many");
    // Blob sizes from the layout (what the registry serves).
    const sizes = new Map<string, number>();
    const built = image;
    for (const d of [...image.layerDigests, Object.values(image.platforms)[0]!.config])
      sizes.set(d, (await stat(join(built.layout, "blobs", "sha256", d.slice(7)))).size);
    const original = `${reg.host}/bench/many:${image.tag}`;
    const top = image.chainIds.at(-1)!;
    const node = async (name: string, snapshotterSock?: string) => {
      const c = new Containerd(join(dir, name), snapshotterSock);
      containerds.push(c);
      await c.start();
      return c;
    };
    const timed = async (path: string, note: string, fn: () => Promise<void>, c?: Containerd) => {
      const before = reg!.requests().length;
      const t0 = performance.now();
      await fn();
      const ms = performance.now() - t0;
      rows.push({ path, ms, registryBytes: registryBytes(reg!, sizes, before), nodeBytes: c && (await contentBytes(c, sizes, built.layerDigests)), note });
    };

    const plain = await node("normal");
    await timed(
      "normal pull + unpack",
      "ctr images pull, containerd's overlayfs snapshotter",
      async () => {
        await plain.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", original], 1_800_000);
        await createSnapshot(plain, "overlayfs", "Prepare", "rootfs", top);
      },
      plain,
    );

    cluster = await TestCluster.start({ peerArgs: ["--proxy-allow-host", "127.0.0.1"] });
    await cluster.addPeer("seed-1", { seed: true });
    const warm = await cluster.addPeer("peer-warm");
    const fresh = await cluster.addPeer("peer-fresh");
    const first = await node("mirror-first");
    await first.ctr(
      [
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "overlayfs",
        "--hosts-dir",
        await containerdHostsDir(join(dir, "hosts-warm"), warm.proxyUrl, reg.host),
        original,
      ],
      1_800_000,
    );
    const viaMirror = await node("mirror-fresh");
    const hosts = await containerdHostsDir(join(dir, "hosts-fresh"), fresh.proxyUrl, reg.host);
    await timed(
      "kiln mirror (swarm has it) + unpack",
      "another node pulled it through its peer first",
      async () => {
        await viaMirror.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", "--hosts-dir", hosts, original], 1_800_000);
        await createSnapshot(viaMirror, "overlayfs", "Prepare", "rootfs", top);
      },
      viaMirror,
    );

    await mkdir(shared);
    await run("mount", ["--bind", shared, shared]);
    const enable = await runKiln(["accelerate", "enable", "--shared", shared]);
    if (enable.code !== 0) throw new Error(enable.stderr);
    await timed("one-time: kiln accelerate create", "fetch + unpack onto the shared directory, push <original>-acc", async () => {
      const r = await runKiln(["accelerate", "create", original, "--plain-http", "--shared", shared], { timeoutMs: 1_800_000 });
      if (r.code !== 0) throw new Error(r.stderr);
    });
    const sock = join(dir, "snap.sock");
    procs.push(await spawnKiln(["snapshotter", "--root", join(dir, "snap-root"), "--address", sock, "--shared", shared, "--log-format", "json"]));
    const acc = await node("accelerated", sock);
    await timed(
      "accelerated target",
      "ctr-remote images rpull --snapshotter kiln: layers mounted from the shared directory",
      async () => {
        await acc.ctrRemote(["images", "rpull", "--plain-http", "--snapshotter", "kiln", `${original}-acc`], 1_800_000);
        await createSnapshot(acc, "kiln", "Prepare", "rootfs", top);
      },
      acc,
    );
  } catch (err) {
    failures.push(`acceleration bench: ${(err as Error).message}`);
  } finally {
    await Promise.all(containerds.map((c) => c.stop()));
    await Promise.all(procs.map((p) => p.kill()));
    await cluster?.stop();
    await run("umount", [shared]).catch(() => undefined);
    await Promise.all([reg?.stop(), image?.cleanup()]);
    await rm(dir, { recursive: true, force: true });
  }
  const size = image ? image.size : 0;
  return [
    {
      title: `Image acceleration: time to a ready rootfs on a fresh node (${files} files, ${(size / 1e6).toFixed(0)} MB compressed, 4 layers)`,
      headers: ["path", "seconds", "registry MB", "node fetched MB", "how"],
      numeric: [false, true, true, true, false],
      rows: rows.map((r) => [
        r.path,
        (r.ms / 1000).toFixed(2),
        (r.registryBytes / 1e6).toFixed(1),
        r.nodeBytes === undefined ? "-" : (r.nodeBytes / 1e6).toFixed(1),
        r.note,
      ]),
      notes: [
        "ready rootfs = image pulled and the container's active snapshot prepared",
        "loopback registry: no network cost (over a real network the fetch share of the first two rows grows)",
        "registry MB = layer and config blobs the registry served during that row; node fetched MB = layer blobs in that node's containerd content store",
      ],
    },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const failures: string[] = [];
  const tables = await accelerationPhase(failures);
  process.stdout.write(`${tables.map(toText).join("\n\n")}\n`);
  if (failures.length) process.stdout.write(`FAILURES:\n${failures.map((f) => `  - ${f}`).join("\n")}\n`);
  process.exit(failures.length ? 1 : 0);
}
