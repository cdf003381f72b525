/**
 * `kiln snapshotter` as containerd's proxy snapshotter (real containerd 1.6, real
 * registry): an image pulled into it and mounted has the same tree as the same image
 * in containerd's own overlayfs snapshotter; active snapshots take writes and commit;
 * the state survives a restart.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { richLayers } from "../helpers/accel-image.js";
import { Containerd, containerdToolsMissing, createSnapshot, waitFor } from "../helpers/containerd.js";
import { buildLayeredImage, type LayeredImage } from "../helpers/layer-tar.js";
import { spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { describeTree, mountAll, unmount } from "../helpers/rootfs.js";

describe("kiln snapshotter under containerd", async () => {
  const skip = await containerdToolsMissing("snapshotter test");
  let dir: string;
  let reg: TestRegistry;
  let image: LayeredImage;
  let snap: KilnProcess;
  let containerd: Containerd;
  const mounted: string[] = [];
  let ref: string;

  const startSnapshotter = () => spawnKiln(["snapshotter", "--root", join(dir, "snap-root"), "--address", join(dir, "snap.sock"), "--log-format", "json"]);

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-snap-"));
    image = await buildLayeredImage(richLayers());
    reg = await startRegistry("none");
    await pushImage(image, reg, "test/rich");
    ref = `${reg.host}/test/rich:${image.tag}`;
    snap = await startSnapshotter();
    containerd = new Containerd(join(dir, "containerd"), join(dir, "snap.sock"));
    await containerd.start();
  });

  after(async () => {
    for (const m of mounted.reverse()) await unmount(m);
    await containerd?.stop();
    await snap?.kill();
    await Promise.all([reg?.stop(), image?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const mountView = async (snapshotter: string, key: string, parent: string): Promise<string> => {
    const mounts = await createSnapshot(containerd, snapshotter, "View", key, parent);
    const target = join(dir, "mnt", `${snapshotter}-${key}`);
    await mkdir(target, { recursive: true });
    await mountAll(mounts, target);
    mounted.push(target);
    return target;
  };

  it("an image pulled into kiln mounts as the same tree as in containerd's overlayfs snapshotter", { skip }, async () => {
    await containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "kiln", ref]);
    await containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", ref]);
    const top = image.chainIds.at(-1)!;
    const kilnRoot = await mountView("kiln", "view-kiln", top);
    const ovlRoot = await mountView("overlayfs", "view-ovl", top);
    const { stdout: mountsJson } = await containerd.ctr(["snapshots", "--snapshotter", "kiln", "mounts", "/x", "view-kiln"]);
    assert.match(mountsJson, /mount -t overlay overlay \/x -o .*lowerdir=/, "a view of three layers is an overlay of lower directories");

    const kiln = await describeTree(kilnRoot);
    const ovl = await describeTree(ovlRoot);
    assert.deepEqual(kiln, ovl, "same names, types, modes, owners, sizes, contents, link targets, hard-link groups and xattrs");
    // What that equality covers, spelled out on the test image.
    assert.equal(kiln["data/deleted"], undefined, "whiteout in layer 2 deletes the file");
    assert.equal(kiln["etc/abs-link"], undefined, "whiteout in layer 3 deletes the symlink");
    assert.deepEqual(
      Object.keys(kiln).filter((p) => p.startsWith("opq/")),
      ["opq/new"],
      "opaque directory hides the lower layer's content",
    );
    assert.equal(kiln["usr/bin/tool"]!.mode, "4755");
    assert.equal(kiln["usr/bin/tool"]!.linkGroup, "usr/bin/tool");
    assert.equal(kiln["usr/bin/tool-hard"]!.linkGroup, "usr/bin/tool");
    assert.equal(kiln["usr/bin/tool"]!.xattrs?.["user.kiln.test"], "0x000102ff");
    assert.equal(kiln["usr/bin/tool-link"]!.type, "file", "a symlink replaced by a file in an upper layer");
    assert.deepEqual([kiln["data/secret"]!.uid, kiln["data/secret"]!.gid, kiln["data/secret"]!.mode], [1000, 1000, "600"]);
    assert.equal(kiln["www/index-copy.html"]!.linkGroup, "www/index-copy.html");
    assert.equal(kiln.etc!.mode, "700");
    assert.equal(kiln.tmp!.mode, "1777");
    assert.equal(kiln["dev/kiln-null"]!.type, "char");
    assert.equal(kiln["dev/kiln-fifo"]!.type, "fifo");
  });

  it("an active snapshot takes writes, commits, and a child of the commit sees them; Stat, Usage, Update, List answer", { skip }, async () => {
    const top = image.chainIds.at(-1)!;
    const mounts = await createSnapshot(containerd, "kiln", "Prepare", "rw-1", top);
    const target = join(dir, "mnt", "rw-1");
    await mkdir(target, { recursive: true });
    await mountAll(mounts, target);
    await writeFile(join(target, "written.txt"), "written in a container\n");
    await rm(join(target, "top.txt"));
    await unmount(target);
    await containerd.ctr(["snapshots", "--snapshotter", "kiln", "commit", "committed-1", "rw-1"]);
    const child = await mountView("kiln", "view-child", "committed-1");
    assert.equal(await readFile(join(child, "written.txt"), "utf8"), "written in a container\n");
    await assert.rejects(stat(join(child, "top.txt")), "the deletion in the upper directory hides the lower file");

    const info = JSON.parse((await containerd.ctr(["snapshots", "--snapshotter", "kiln", "info", "committed-1"])).stdout) as { Kind: string; Parent: string };
    assert.equal(info.Kind, "Committed");
    assert.equal(info.Parent, top);
    await containerd.ctr(["snapshots", "--snapshotter", "kiln", "label", "committed-1", "kiln.test/label=yes"]);
    const labelled = JSON.parse((await containerd.ctr(["snapshots", "--snapshotter", "kiln", "info", "committed-1"])).stdout) as {
      Labels: Record<string, string>;
    };
    assert.equal(labelled.Labels["kiln.test/label"], "yes");
    const usage = (await containerd.ctr(["snapshots", "--snapshotter", "kiln", "usage", "committed-1"])).stdout;
    assert.match(usage, /committed-1\s+\d/, usage);
    const ls = (await containerd.ctr(["snapshots", "--snapshotter", "kiln", "ls"])).stdout;
    for (const name of [...image.chainIds, "committed-1", "view-child"]) assert.ok(ls.includes(name), `${name} listed:\n${ls}`);
    await assert.rejects(containerd.ctr(["snapshots", "--snapshotter", "kiln", "rm", "committed-1"]), /child/, "a snapshot with a child is not removed");
  });

  it("keeps its state across a restart, in a metadata file only root can read", { skip }, async () => {
    const meta = await stat(join(dir, "snap-root", "metadata.json"));
    assert.equal(meta.mode & 0o777, 0o600);
    await snap.kill();
    snap = await startSnapshotter();
    // containerd redials the proxy snapshotter with a back-off of a few seconds.
    let ls = "";
    await waitFor("containerd reconnecting to the snapshotter", async () => {
      ls = (await containerd.ctr(["snapshots", "--snapshotter", "kiln", "ls"])).stdout;
      return true;
    });
    for (const name of [...image.chainIds, "committed-1", "view-child"]) assert.ok(ls.includes(name), `${name} listed after restart:\n${ls}`);
    await unmount(join(dir, "mnt", "kiln-view-child"));
    await containerd.ctr(["snapshots", "--snapshotter", "kiln", "rm", "view-child"]);
    await containerd.ctr(["snapshots", "--snapshotter", "kiln", "rm", "committed-1"]);
    const after = (await containerd.ctr(["snapshots", "--snapshotter", "kiln", "ls"])).stdout;
    assert.ok(!after.includes("committed-1"), after);
  });
});
