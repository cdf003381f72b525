/**
 * Image acceleration end to end (real containerd 1.6, real registry, loopback):
 * `kiln accelerate create` unpacks the original's layers onto the shared directory and
 * pushes <original>-acc; containerd pulling the target through the lazy unpacker
 * (`ctr-remote images rpull`) into kiln's snapshotter fetches no layer blob and mounts
 * the same tree as a normal pull of the original; a node without the shared directory
 * still pulls (layers fetched as usual) and logs why; `delete` refuses while a node
 * uses the layers.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { richLayers } from "../helpers/accel-image.js";
import { Containerd, containerdToolsMissing, createSnapshot, waitFor } from "../helpers/containerd.js";
import { buildLayeredImage, type LayeredImage } from "../helpers/layer-tar.js";
import { runKiln, spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { describeTree, getXattr, mountAll, unmount } from "../helpers/rootfs.js";

const run = promisify(execFile);
const hex = (d: string) => d.slice("sha256:".length);

interface View {
  Enable: boolean;
  NfsReady: boolean;
  AgentReady: boolean;
  Status: string;
  Error: string;
  Images: { OriginalImage: string; TargetImage: string; Size: number; Layers: number }[];
  Nodes: string[];
}

describe("image acceleration", async () => {
  const skip = await containerdToolsMissing("image acceleration test", { "ctr-remote": "stargz-snapshotter" });
  let dir: string;
  let shared: string;
  let reg: TestRegistry;
  let image: LayeredImage;
  let original: string;
  let target: string;
  const snapshotters: KilnProcess[] = [];
  const containerds: Containerd[] = [];
  const mounted: string[] = [];

  const kiln = async (args: string[]) => {
    const r = await runKiln([...args, "--shared", shared], { env: { KILN_LOG_FORMAT: "json" } });
    // The answer is the pretty-printed JSON after any log lines.
    const at = r.stdout.indexOf('{\n  "Enable"');
    return { ...r, view: r.code === 0 && at >= 0 ? (JSON.parse(r.stdout.slice(at)) as View) : undefined };
  };

  const node = async (name: string, sharedDir: string) => {
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
    // containerd configured with what `kiln config containerd --snapshotter` prints.
    const snippet = await runKiln(["config", "containerd", "--snapshotter", "--address", sock, "--content-only"]);
    assert.equal(snippet.code, 0, snippet.stderr);
    const c = new Containerd(join(dir, `${name}-containerd`), sock, snippet.stdout);
    containerds.push(c);
    await c.start();
    return { snap, c };
  };

  const mountView = async (c: Containerd, snapshotter: string, key: string, parent: string): Promise<string> => {
    const mounts = await createSnapshot(c, snapshotter, "View", key, parent);
    const mnt = join(dir, "mnt", `${snapshotter}-${key}`);
    await mkdir(mnt, { recursive: true });
    await mountAll(mounts, mnt);
    mounted.push(mnt);
    return mnt;
  };

  const layerGets = () => image.layerDigests.reduce((n, d) => n + reg.blobGets(d), 0);

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-accel-"));
    shared = join(dir, "shared");
    await mkdir(shared);
    // The shared directory is a mount point, as an NFS mount would be.
    await run("mount", ["--bind", shared, shared]);
    image = await buildLayeredImage(richLayers());
    reg = await startRegistry("none");
    await pushImage(image, reg, "test/rich");
    original = `${reg.host}/test/rich:${image.tag}`;
    target = `${original}-acc`;
  });

  after(async () => {
    for (const m of mounted.reverse()) await unmount(m);
    await Promise.all(containerds.map((c) => c.stop()));
    await Promise.all(snapshotters.map((s) => s.kill()));
    await Promise.all([reg?.stop(), image?.cleanup()]);
    if (shared) await unmount(shared);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("enable checks the shared directory and sees the node's snapshotter; create unpacks every layer and pushes <original>-acc", { skip }, async () => {
    await node("node-a", shared);
    const enabled = await kiln(["accelerate", "enable"]);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal(enabled.view!.Enable, true);
    assert.equal(enabled.view!.NfsReady, true);
    await waitFor("node-a's report", async () => (await kiln(["accelerate", "get"])).view!.AgentReady);

    const created = await kiln(["accelerate", "create", original, "--plain-http"]);
    assert.equal(created.code, 0, created.stderr + created.stdout);
    assert.equal(created.view!.Status, "Ready");
    assert.deepEqual(created.view!.Images, [{ OriginalImage: original, TargetImage: target, Size: image.size, Layers: 3 }]);
    assert.deepEqual((await readdir(join(shared, "layers"))).sort(), image.chainIds.map(hex).sort(), "one directory per layer, no temporary left");
    assert.equal(layerGets(), 3, "each layer fetched once");

    // What overlayfs needs, in the unpacked layers themselves.
    const upper = join(shared, "layers", hex(image.chainIds[1]!));
    const wh = await lstat(join(upper, "data", "deleted"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, "the whiteout is a 0/0 character device");
    assert.equal((await getXattr(join(upper, "opq"), "trusted.overlay.opaque"))?.toString(), "y", "the opaque directory is marked");
    const base = join(shared, "layers", hex(image.chainIds[0]!));
    assert.equal((await getXattr(join(base, "usr/bin/tool"), "user.kiln.test"))?.toString("hex"), "000102ff");

    // The target names each layer's chain ID.
    const m = (await (
      await fetch(`${reg.url}/v2/test/rich/manifests/${image.tag}-acc`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } })
    ).json()) as {
      layers: { digest: string; annotations: Record<string, string> }[];
    };
    assert.deepEqual(
      m.layers.map((l) => l.digest),
      image.layerDigests,
      "same layers as the original",
    );
    assert.deepEqual(
      m.layers.map((l) => l.annotations["containerd.io/snapshot/kiln.chain-id"]),
      image.chainIds,
    );

    const again = await kiln(["accelerate", "create", original, "--plain-http"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(layerGets(), 3, "a second create unpacks nothing again");
    assert.equal(again.stdout.split("\n").filter((l) => l.includes('"layer-present"')).length, 3);
  });

  it("containerd pulls the target through the lazy unpacker without fetching a layer, and mounts the original's tree", { skip }, async () => {
    const a = containerds[0]!;
    const before = layerGets();
    await a.ctrRemote(["images", "rpull", "--plain-http", "--snapshotter", "kiln", target]);
    assert.equal(layerGets(), before, `no layer blob GET at the registry:\n${reg.requests().slice(-20).join("\n")}`);
    assert.ok(snapshotters[0]!.lines.filter((l) => l.includes('"shared-layer"')).length === 3, "all three layers mounted from shared storage");

    const accelerated = await describeTree(await mountView(a, "kiln", "acc-view", image.chainIds.at(-1)!));
    await a.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", original]);
    const normal = await describeTree(await mountView(a, "overlayfs", "normal-view", image.chainIds.at(-1)!));
    assert.deepEqual(accelerated, normal, "names, types, modes, owners, sizes, sha256, symlink targets, hard-link groups, xattrs");
    assert.equal(accelerated["data/deleted"], undefined, "the whiteout hides the deleted file");
    assert.deepEqual(
      Object.keys(accelerated).filter((p) => p.startsWith("opq/")),
      ["opq/new"],
      "the opaque directory hides the lower content",
    );
    assert.equal(accelerated["usr/bin/tool"]!.linkGroup, "usr/bin/tool");
  });

  it("a node whose shared directory is missing still pulls the target (layers fetched as usual) and logs why", { skip }, async () => {
    const { snap, c } = await node("node-b", join(dir, "not-mounted"));
    const before = layerGets();
    await c.ctrRemote(["images", "rpull", "--plain-http", "--snapshotter", "kiln", target]);
    assert.equal(layerGets(), before + 3, "the three layers were fetched");
    const why = snap.lines.filter((l) => l.includes('"shared-layer-unavailable"'));
    assert.ok(why.length >= 1 && why[0]!.includes("not-mounted"), `logged why:\n${snap.lines.slice(-10).join("\n")}`);
    const tree = await describeTree(await mountView(c, "kiln", "b-view", image.chainIds.at(-1)!));
    assert.equal(tree["opq/new"]!.sha256 !== undefined, true);
  });

  it("delete is refused while a container runs from the image, naming the node; afterwards it removes the layers", { skip }, async () => {
    const a = containerds[0]!;
    await unmount(join(dir, "mnt", "kiln-acc-view"));
    await a.ctr(["snapshots", "--snapshotter", "kiln", "rm", "acc-view"]);
    // runc keeps container state under one root for every containerd on the machine: a name of this run only.
    const id = `acc-${process.pid}-${Date.now()}`;
    await a.ctr(["run", "-d", "--snapshotter", "kiln", target, id, "/bin/busybox", "sleep", "600"]);
    const ps = (await a.ctr(["tasks", "ls"])).stdout;
    assert.match(ps, new RegExp(`${id}\\s+\\d+\\s+RUNNING`), ps);
    const inside = (await a.ctr(["tasks", "exec", "--exec-id", "check", id, "/bin/busybox", "cat", "/www/index.html"])).stdout;
    assert.equal(inside, "<h1>kiln</h1>\n", "the container reads files of the accelerated layers");
    await waitFor("node-a's report of the container", async () => {
      const r = await kiln(["accelerate", "delete", original]);
      return r.code !== 0 && r.stderr.includes("container rootfs snapshot");
    });
    const refused = await kiln(["accelerate", "delete", original]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /in use on node-a \(1 container rootfs snapshot\(s\)\)/);
    assert.ok(!refused.stderr.includes("node-b"), "node-b fetched its own layers: it does not use the shared ones");

    await a.ctr(["tasks", "kill", "-s", "SIGKILL", id]);
    await waitFor("the task to stop", async () => !(await a.ctr(["tasks", "ls"])).stdout.includes("RUNNING"));
    await a.ctr(["tasks", "rm", id]);
    await a.ctr(["containers", "rm", id]);
    // The original shares the target's config blob, whose gc.ref labels keep the kiln snapshots: both go.
    await a.ctr(["images", "rm", "--sync", target, original]);
    let last = "";
    await waitFor("node-a's report without the image", async () => {
      const r = await kiln(["accelerate", "delete", original]);
      last = r.stderr;
      return r.code === 0;
    }).catch(async (err: Error) => {
      const ls = (await a.ctr(["snapshots", "--snapshotter", "kiln", "ls"])).stdout;
      throw new Error(`${err.message}\n${last}\n${ls}`);
    });
    assert.deepEqual(await readdir(join(shared, "layers")), []);
    const got = await kiln(["accelerate", "get"]);
    assert.deepEqual(got.view!.Images, []);
    assert.equal(got.view!.Status, "Ready");
  });

  it("a layer that does not match the image's config is never put in place: CreateError, and no half layer", { skip }, async () => {
    const bad = await buildLayeredImage(richLayers().slice(0, 2), "bad", { wrongDiffIdAt: 1 });
    try {
      await pushImage(bad, reg, "test/rich");
      const r = await kiln(["accelerate", "create", `${reg.host}/test/rich:bad`, "--plain-http"]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /uncompressed digest .* the image config says/);
      const got = await kiln(["accelerate", "get"]);
      assert.equal(got.view!.Status, "CreateError");
      assert.match(got.view!.Error, /image config says/);
      assert.deepEqual(await readdir(join(shared, "layers")), [hex(bad.chainIds[0]!)], "the good bottom layer stays; nothing else, no temporary");
      const head = await fetch(`${reg.url}/v2/test/rich/manifests/bad-acc`, { method: "HEAD" });
      assert.equal(head.status, 404, "no target is pushed");
    } finally {
      await bad.cleanup();
    }
  });
});
