/**
 * The Kubernetes path: the kubelet's CRI PullImage (containerd 1.6's CRI plugin,
 * configured with `kiln config containerd --snapshotter`) of the accelerated target
 * fetches no layer; on a node whose shared directory is missing, the same pull goes
 * through the kiln peer mirror (`kiln config containerd --registry`), so the swarm
 * serves the layers, and the snapshotter logs why.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { richLayers } from "../helpers/accel-image.js";
import { TestCluster } from "../helpers/cluster.js";
import { Containerd, containerdToolsMissing } from "../helpers/containerd.js";
import { criPullImage } from "../helpers/cri.js";
import { buildLayeredImage, type LayeredImage } from "../helpers/layer-tar.js";
import { runKiln, spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { unmount } from "../helpers/rootfs.js";

const run = promisify(execFile);

describe("image acceleration through CRI PullImage", async () => {
  const skip = await containerdToolsMissing("CRI acceleration test");
  let dir: string;
  let shared: string;
  let reg: TestRegistry;
  let image: LayeredImage;
  let cluster: TestCluster;
  let target: string;
  const snapshotters: KilnProcess[] = [];
  const containerds: Containerd[] = [];

  const layerGets = () => image.layerDigests.reduce((n, d) => n + reg.blobGets(d), 0);

  /** A node: kiln snapshotter + containerd with CRI, configured by `kiln config containerd`; `peer`: pulls go through it. */
  const node = async (name: string, sharedDir: string, peer?: string) => {
    const sock = join(dir, `${name}.sock`);
    const snap = await spawnKiln([
      "snapshotter",
      "--root",
      join(dir, `${name}-snap`),
      "--address",
      sock,
      "--shared",
      sharedDir,
      "--node-name",
      name,
      "--log-format",
      "json",
    ]);
    snapshotters.push(snap);
    const snippet = await runKiln(["config", "containerd", "--snapshotter", "--address", sock, "--content-only"]);
    const certs = join(dir, `${name}-certs.d`);
    await mkdir(join(certs, reg.host), { recursive: true });
    const hosts = peer
      ? (await runKiln(["config", "containerd", "--peer", peer, "--registry", reg.host, "--content-only"])).stdout
      : `server = "${reg.url}"\n\n[host."${reg.url}"]\n  capabilities = ["pull", "resolve"]\n`;
    await writeFile(join(certs, reg.host, "hosts.toml"), hosts);
    const c = new Containerd(join(dir, `${name}-containerd`), sock, snippet.stdout, { configPath: certs });
    containerds.push(c);
    await c.start();
    return { snap, c };
  };

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-accel-cri-"));
    shared = join(dir, "shared");
    await mkdir(shared);
    await run("mount", ["--bind", shared, shared]);
    image = await buildLayeredImage(richLayers());
    reg = await startRegistry("none");
    await pushImage(image, reg, "test/rich");
    const original = `${reg.host}/test/rich:${image.tag}`;
    target = `${original}-acc`;
    assert.equal((await runKiln(["accelerate", "enable", "--shared", shared])).code, 0);
    const created = await runKiln(["accelerate", "create", original, "--plain-http", "--shared", shared]);
    assert.equal(created.code, 0, created.stderr);
    cluster = await TestCluster.start({ peerArgs: ["--proxy-allow-host", "127.0.0.1"] });
    await cluster.addPeer("seed-1", { seed: true });
  });

  after(async () => {
    await Promise.all(containerds.map((c) => c.stop()));
    await Promise.all(snapshotters.map((s) => s.kill()));
    await cluster?.stop();
    await Promise.all([reg?.stop(), image?.cleanup()]);
    if (shared) await unmount(shared);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("CRI PullImage of the target fetches no layer: every layer is mounted from the shared directory", { skip }, async () => {
    const { snap, c } = await node("cri-a", shared);
    const before = layerGets();
    const ref = await criPullImage(c.sock, target);
    assert.match(ref, /^sha256:[a-f0-9]{64}$/);
    assert.equal(layerGets(), before, "no layer blob GET at the registry");
    assert.equal(snap.lines.filter((l) => l.includes('"shared-layer"')).length, 3);
    const ls = (await c.ctr(["-n", "k8s.io", "snapshots", "--snapshotter", "kiln", "ls"])).stdout;
    for (const id of image.chainIds) assert.ok(ls.includes(id), `${id} committed in kiln:\n${ls}`);
  });

  it("without the shared directory the pull still succeeds, the layers served through the kiln peer, and the snapshotter says why", { skip }, async () => {
    const peer = await cluster.addPeer("peer-b");
    const { snap, c } = await node("cri-b", join(dir, "missing"), peer.proxyUrl);
    await criPullImage(c.sock, target);
    for (const d of image.layerDigests)
      assert.ok(
        peer.proc.lines.some((l) => l.includes(d.slice(7))),
        `the peer served ${d}`,
      );
    assert.ok(
      snap.lines.some((l) => l.includes('"shared-layer-unavailable"') && l.includes("missing")),
      "logged why",
    );
    const ls = (await c.ctr(["-n", "k8s.io", "snapshots", "--snapshotter", "kiln", "ls"])).stdout;
    for (const id of image.chainIds) assert.ok(ls.includes(id), `${id} unpacked locally:\n${ls}`);
  });
});
