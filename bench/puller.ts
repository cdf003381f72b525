/**
 * Keeping 2 images warm on N nodes, two intervals: what the
 * registry serves with kiln's pull schedule against the Kubernetes Image Puller's model,
 * where every node pulls every image itself every interval (N direct `skopeo copy`
 * runs per image, each node with its own store, in the same run). Counted from the
 * registry's own access log: blob GETs and bytes, manifest requests.
 * Not part of `npm run bench`:
 *
 *   node scripts/build.mjs && node --import tsx bench/puller.ts
 *
 * Env: BENCH_NODES (8), BENCH_LAYERS (3), BENCH_LAYER_MIB (8).
 * Prints a table to stdout and writes bench/results/puller.md.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startManagedCluster } from "../test/helpers/managed-cluster.js";
import { buildOciImage, pushImage, startRegistry, type BuiltImage, type TestRegistry } from "../test/helpers/registry.js";
import { api } from "../test/helpers/manager.js";
import { toMarkdown, toText, type Table } from "./table.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const NODES = Number(process.env.BENCH_NODES ?? 8);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 3);
const LAYER_MIB = Number(process.env.BENCH_LAYER_MIB ?? 8);
const ROOT_PASSWORD = "bench-puller-root";

/** Blob digest → size, from the images' OCI layouts. */
async function blobSizes(images: BuiltImage[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const img of images) {
    const dir = join(img.layout, "blobs", "sha256");
    for (const hex of await readdir(dir)) sizes.set(`sha256:${hex}`, (await stat(join(dir, hex))).size);
  }
  return sizes;
}

/** What the registry served since `from` (an index into its access log). */
function served(registry: TestRegistry, from: number, sizes: Map<string, number>) {
  const lines = registry.requests().slice(from);
  const blobs = lines.filter((l) => /^GET \S*\/blobs\/sha256:/.test(l));
  const bytes = blobs.reduce((n, l) => n + (sizes.get(/(sha256:[0-9a-f]{64})/.exec(l)?.[1] ?? "") ?? 0), 0);
  return { blobGets: blobs.length, blobMiB: bytes / MiB, manifests: lines.filter((l) => /\/manifests\//.test(l)).length };
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(os.tmpdir(), "kiln-bench-puller-"));
  const registry = await startRegistry("none");
  const images: BuiltImage[] = [];
  for (const repo of ["team/app1", "team/app2"]) {
    const img = await buildOciImage({ platforms: ["linux/amd64"], layers: LAYERS, layerBytes: LAYER_MIB * MiB });
    await pushImage(img, registry, repo);
    images.push(img);
  }
  const refs = ["team/app1", "team/app2"].map((repo, i) => `${registry.host}/${repo}:${images[i]!.tag}`);
  const sizes = await blobSizes(images);
  const rows: string[][] = [];
  const row = (model: string, interval: string, r: ReturnType<typeof served>) =>
    rows.push([model, interval, String(r.blobGets), r.blobMiB.toFixed(1), String(r.manifests)]);

  // The Image Puller's model: every node pulls every image itself, every interval (its own store persists between intervals).
  for (const interval of ["1 (cold)", "2 (no change)"]) {
    const from = registry.requests().length;
    await Promise.all(
      Array.from({ length: NODES }, async (_, n) => {
        for (const [i, ref] of refs.entries()) {
          const dest = join(tmp, `node-${n}`, `image-${i}`);
          await mkdir(dest, { recursive: true });
          await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${ref}`, `oci:${dest}:latest`], { timeout: 600_000 });
        }
      }),
    );
    row(`Image Puller model: ${NODES} nodes pull directly`, interval, served(registry, from, sizes));
  }

  // kiln: one pull schedule over N peers.
  const managed = await startManagedCluster(tmp, { rootPassword: ROOT_PASSWORD, schedulerArgs: ["--hosts-report-ms", "500"] });
  const { managerUrl, cluster, token, clusterToken } = managed;
  try {
    for (let n = 0; n < NODES; n++) await cluster.addPeer(`node-${n}`, { args: ["--label", "pool=apps"] });
    while ((await api(`${managerUrl}/oapi/v1/peers?labels=pool=apps&state=active`, { token: clusterToken })).json?.length !== NODES) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const waitRun = async (id: number, since: string) => {
      for (;;) {
        const s = (await api(`${managerUrl}/oapi/v1/pull-schedules/${id}`, { token })).json;
        if (s.state === "idle" && s.status?.images.every((i: { checked_at: string }) => i.checked_at >= since)) return s;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    let from = registry.requests().length;
    let since = new Date().toISOString();
    const created = await api(`${managerUrl}/oapi/v1/pull-schedules`, {
      token,
      body: { name: "bench", images: refs.map((r, i) => `app${i + 1}=${r}`).join(";"), node_selector: { pool: "apps" }, insecure_registries: [registry.host] },
    });
    const first = await waitRun(created.json.id, since);
    const warm = first.status.cells.filter((c: { state: string }) => c.state === "warm").length;
    if (warm !== NODES * refs.length) throw new Error(`kiln: only ${warm} of ${NODES * refs.length} image × node pairs warm: ${JSON.stringify(first.status)}`);
    row(`kiln pull schedule: ${NODES} peers`, "1 (cold)", served(registry, from, sizes));
    from = registry.requests().length;
    since = new Date().toISOString();
    await api(`${managerUrl}/oapi/v1/pull-schedules/${created.json.id}/run`, { token, method: "POST" });
    await waitRun(created.json.id, since);
    row(`kiln pull schedule: ${NODES} peers`, "2 (no change)", served(registry, from, sizes));
  } finally {
    await managed.stop();
    await registry.stop();
    for (const img of images) await img.cleanup();
    await rm(tmp, { recursive: true, force: true });
  }

  const imageMiB = [...sizes.values()].reduce((a, b) => a + b, 0) / MiB;
  const table: Table = {
    title: `Keeping 2 images (${imageMiB.toFixed(1)} MiB of blobs in all) warm on ${NODES} nodes: what the registry serves per interval`,
    headers: ["model", "interval", "blob GETs", "blob MiB", "manifest requests"],
    rows,
    numeric: [false, false, true, true, true],
    notes: [
      "Image Puller model: N direct `skopeo copy` per image and interval, each node keeping its own store (pull policy Always: every interval asks for every manifest).",
      "kiln: one pull schedule, node selector pool=apps over N peers and a seed peer; the manager resolves each tag once per run, the peers share blobs.",
      "Counted from docker-registry's access log in the same run; loopback, one 2-core machine.",
    ],
  };
  process.stdout.write(`${toText(table)}\n`);
  const out = fileURLToPath(new URL("results/puller.md", import.meta.url));
  await writeFile(out, `${toMarkdown(table)}\n`);
  process.stderr.write(`wrote ${out}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench/puller: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
