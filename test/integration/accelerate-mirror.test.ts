/**
 * `kiln accelerate create --mirror`: the original's layers come through a kiln peer,
 * so the swarm serves them: two builders (two shared directories, two peers) create
 * the same image and the registry serves each layer once.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { richLayers } from "../helpers/accel-image.js";
import { TestCluster } from "../helpers/cluster.js";
import { buildLayeredImage, type LayeredImage } from "../helpers/layer-tar.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { runKiln } from "../helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { unmount } from "../helpers/rootfs.js";

const run = promisify(execFile);

describe("accelerate create through the kiln swarm", async () => {
  const skip = await prerequisitesMissing(
    "accelerate mirror test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", setfattr: "attr", busybox: "busybox-static" },
    process.getuid?.() === 0 ? [] : ["unpacking layers (owners, devices, trusted xattrs) and bind mounts need root"],
  );
  let dir: string;
  let reg: TestRegistry;
  let image: LayeredImage;
  let cluster: TestCluster;
  const shares: string[] = [];

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-accel-mirror-"));
    image = await buildLayeredImage(richLayers());
    reg = await startRegistry("none");
    await pushImage(image, reg, "test/rich");
    cluster = await TestCluster.start({ peerArgs: ["--proxy-allow-host", "127.0.0.1"] });
    await cluster.addPeer("seed-1", { seed: true });
  });

  after(async () => {
    for (const s of shares) await unmount(s);
    await cluster?.stop();
    await Promise.all([reg?.stop(), image?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const builder = async (name: string) => {
    const shared = join(dir, `shared-${name}`);
    await mkdir(shared);
    await run("mount", ["--bind", shared, shared]);
    shares.push(shared);
    const peer = await cluster.addPeer(`peer-${name}`);
    const enabled = await runKiln(["accelerate", "enable", "--shared", shared]);
    assert.equal(enabled.code, 0, enabled.stderr);
    return { shared, peer };
  };

  it("two builders create the same image through two peers; the registry serves each layer once", { skip }, async () => {
    const original = `${reg.host}/test/rich:${image.tag}`;
    for (const name of ["a", "b"]) {
      const { shared, peer } = await builder(name);
      const r = await runKiln(["accelerate", "create", original, "--plain-http", "--mirror", peer.proxyUrl, "--shared", shared]);
      assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
      assert.deepEqual((await readdir(join(shared, "layers"))).sort(), image.chainIds.map((c) => c.slice(7)).sort());
      for (const d of image.layerDigests)
        assert.ok(
          peer.proc.lines.some((l) => l.includes(d.slice(7))),
          `peer-${name} served ${d}`,
        );
    }
    for (const d of image.layerDigests) assert.equal(reg.blobGets(d), 1, `registry GETs of ${d}`);
  });
});
