/**
 * `kiln accelerate create` (the real process, a real registry) on hostile images:
 * a layer that reaches another accelerated image's files
 * through a symlink fails even when its diff ID is wrong (side effects used to happen
 * before the digest check), and a hard link through a lower layer's symlink does not
 * copy a host file onto the shared directory. Neither changes anything outside the
 * layer being staged.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildLayeredImage, type TarEntry } from "../helpers/layer-tar.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { runKiln } from "../helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { unmount } from "../helpers/rootfs.js";
import { filesContaining, treeFingerprint } from "../helpers/tree-fingerprint.js";

const run = promisify(execFile);
const hex = (d: string) => d.slice("sha256:".length);
const SECRET = "host secret 5e0a";

describe("accelerate create on hostile layers", async () => {
  const skip = await prerequisitesMissing(
    "accelerate hostile-layer test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", setfattr: "attr" },
    process.getuid?.() === 0 ? [] : ["unpacking layers (owners, devices) and bind mounts need root"],
  );
  let dir: string;
  let shared: string;
  let host: string;
  let reg: TestRegistry;
  let victimHex: string;
  let victimLayer: string;
  const cleanups: (() => Promise<void>)[] = [];

  const kiln = (args: string[]) => runKiln([...args, "--shared", shared]);
  const push = async (name: string, layers: TarEntry[][], opts: { wrongDiffIdAt?: number } = {}) => {
    const image = await buildLayeredImage(layers, "v1", opts);
    cleanups.push(image.cleanup);
    await pushImage(image, reg, `test/${name}`);
    return { image, ref: `${reg.host}/test/${name}:v1` };
  };
  /** The host directory and every finished layer on the shared directory. */
  const outside = async () => ({ host: await treeFingerprint(host), layers: dropLayersTimes(await treeFingerprint(join(shared, "layers"))) });

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-accel-hostile-"));
    shared = join(dir, "shared");
    host = join(dir, "host");
    await mkdir(shared);
    await run("mount", ["--bind", shared, shared]);
    await mkdir(host);
    await writeFile(join(host, "secret"), SECRET, { mode: 0o600 });
    reg = await startRegistry("none");
    const enabled = await kiln(["accelerate", "enable"]);
    assert.equal(enabled.code, 0, enabled.stderr);
    const victim = await push("victim", [[{ type: "file", path: "file", data: "another image's file", mode: 0o644 }]]);
    const created = await kiln(["accelerate", "create", victim.ref, "--plain-http"]);
    assert.equal(created.code, 0, created.stderr);
    victimHex = hex(victim.image.chainIds[0]!);
    victimLayer = join(shared, "layers", victimHex);
  });

  after(async () => {
    await reg?.stop();
    for (const c of cleanups) await c();
    if (shared) await unmount(shared);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a layer with a symlink into another image's layer and a setuid hard link through it fails before its wrong diff ID is even checked, and leaves that layer as it was (defect 3)", {
    skip,
  }, async () => {
    const hostile: TarEntry[][] = [
      [
        { type: "symlink", path: "s", target: victimLayer },
        { type: "link", path: "h", target: "s/file", mode: 0o6777 },
      ],
    ];
    const { ref } = await push("hostile", hostile, { wrongDiffIdAt: 0 });
    const before = await outside();
    const r = await kiln(["accelerate", "create", ref, "--plain-http"]);
    assert.equal((await lstat(join(victimLayer, "file"))).mode & 0o7777, 0o644, "the other image's file is neither world-writable nor setuid");
    assert.deepEqual(await outside(), before, "nothing outside the staging directory changed");
    assert.notEqual(r.code, 0, "create fails");
    assert.match(r.stderr, /hard link h to s\/file goes through the symlink s/);
    assert.deepEqual(await readdir(join(shared, "layers")), [victimHex], "no layer of the hostile image, no staging directory left");
  });

  it("a hard link through a lower layer's symlink to a host directory fails, and the host file never reaches the shared directory (defect 2)", {
    skip,
  }, async () => {
    const { image, ref } = await push("leak", [
      [{ type: "symlink", path: "lnk", target: host }],
      [{ type: "link", path: "leak", target: "lnk/secret", mode: 0o644 }],
    ]);
    const before = await outside();
    const r = await kiln(["accelerate", "create", ref, "--plain-http"]);
    assert.deepEqual(await filesContaining(shared, SECRET), [], "no copy of the host file on the shared directory");
    assert.notEqual(r.code, 0, "create fails");
    assert.match(r.stderr, /hard link leak to lnk\/secret goes through the symlink lnk of a lower layer/);
    assert.deepEqual(
      (await readdir(join(shared, "layers"))).sort(),
      [victimHex, hex(image.chainIds[0]!)].sort(),
      "the symlink-only bottom layer is harmless and stays; the hostile upper layer is not put in place",
    );
    const now = await outside();
    assert.deepEqual(now.host, before.host, "the host directory is unchanged");
    for (const [path, was] of Object.entries(before.layers)) assert.equal(now.layers[path], was, `layers/${path} is unchanged`);
  });
});

/** layers/ itself changes by layers and staging directories coming and going; its entries are compared, not its times. */
function dropLayersTimes(fp: Record<string, string>): Record<string, string> {
  return { ...fp, ".": (fp["."] ?? "").replace(/ nlink=\S+ mtime=\S+ ctime=\S+/, "") };
}
