/**
 * Hostile layers stay in their staging tree: symlinks
 * planted by the same or a lower layer, hard links through them, `..` after a symlink,
 * hard links to directories. Each case unpacks onto a shared directory that already
 * holds another image's layer (the victim) next to a canary host directory, and checks
 * that neither changed in any byte, mode, owner, link count or time, and that no host
 * secret was copied into the layer.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTar, type TarEntry as ReadEntry } from "../../src/accelerate/tar-reader.js";
import { unpackLayer } from "../../src/accelerate/unpack.js";
import { layerTar, type TarEntry } from "../helpers/layer-tar.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { filesContaining, treeFingerprint } from "../helpers/tree-fingerprint.js";

const needsRoot = await prerequisitesMissing("hostile layer test", { mknod: "coreutils", setfattr: "attr" }, process.getuid?.() === 0 ? [] : ["needs root"]);

const SECRET = "host secret 7c1d";
const VICTIM = "a file of another accelerated image";

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

interface Scene {
  /** A host directory no layer may touch: secret (0600), dir/ (uid 4321, 0710) with dir/file. */
  host: string;
  /** The shared directory: layers/<victim>/file belongs to an image accelerated earlier. */
  shared: string;
  victimFile: string;
  /** Unpacks the layers in order, each onto the ones before, the last into a staging directory under layers/ (as create does); resolves to it. */
  unpack(layers: TarEntry[][]): Promise<string>;
  /** Fails if the host or the shared directory changed, or the secret reached the staging tree. */
  assertUntouched(): Promise<void>;
}

/** layers/ itself changes only by the staging directory coming and going: its times are left out, its entries are not. */
async function sharedFingerprint(shared: string): Promise<Record<string, string>> {
  const fp = await treeFingerprint(shared);
  if (fp.layers) fp.layers = fp.layers.replace(/ mtime=\S+ ctime=\S+/, "");
  return fp;
}

async function scene(): Promise<Scene> {
  const root = await mkdtemp(join(tmpdir(), "kiln-hostile-"));
  const host = join(root, "host");
  const shared = join(root, "shared");
  await mkdir(join(host, "dir"), { recursive: true });
  await writeFile(join(host, "secret"), SECRET, { mode: 0o600 });
  await writeFile(join(host, "dir", "file"), "host file", { mode: 0o644 });
  await chmod(join(host, "dir"), 0o710);
  await chown(join(host, "dir"), 4321, 4321);
  const victimFile = join(shared, "layers", "a".repeat(64), "file");
  await mkdir(join(shared, "layers", "a".repeat(64)), { recursive: true });
  await writeFile(victimFile, VICTIM, { mode: 0o644 });
  const fingerprints = async () => ({ host: await treeFingerprint(host), shared: await sharedFingerprint(shared) });
  let before: Awaited<ReturnType<typeof fingerprints>> | undefined;
  let staging: string | undefined;
  let n = 0;
  return {
    host,
    shared,
    victimFile,
    async unpack(layers) {
      const parents: string[] = [];
      for (const [i, entries] of layers.entries()) {
        const last = i === layers.length - 1;
        // Lower layers are finished layers on the shared directory; the last one is staged where create stages it.
        const dir = join(shared, "layers", last ? `.tmp-${"b".repeat(64)}-${n++}` : `${n++}`.padStart(64, "c"));
        if (last) {
          before = await fingerprints();
          staging = dir;
        }
        await unpackLayer(readTar(once(layerTar(entries))), { dir, parents: [...parents] });
        parents.unshift(dir);
      }
      return staging ?? "";
    },
    async assertUntouched() {
      assert.ok(before && staging, "the hostile layer was unpacked");
      assert.deepEqual(await filesContaining(staging, SECRET), [], "no host file was copied into the layer");
      // As create does when a layer fails (or once it is renamed into place).
      await rm(staging, { recursive: true, force: true });
      const after = await fingerprints();
      assert.deepEqual(after.host, before.host, "the host directory is unchanged");
      assert.deepEqual(after.shared, before.shared, "the shared directory (the other image's layer, the lower layers) is unchanged");
      assert.equal(await readFile(victimFile, "utf8"), VICTIM);
      await rm(root, { recursive: true, force: true });
    },
  };
}

describe("hostile layers", { skip: needsRoot ?? false }, () => {
  it("a hard link through a symlink a lower layer planted is refused, and the host file is not copied into the layer (defect 2)", async () => {
    const s = await scene();
    await assert.rejects(
      s.unpack([[{ type: "symlink", path: "lnk", target: s.host }], [{ type: "link", path: "leak", target: "lnk/secret", mode: 0o644 }]]),
      /hard link leak to lnk\/secret goes through the symlink lnk/,
    );
    await s.assertUntouched();
  });

  it("a hard link through a symlink to another image's layer is refused, and that layer's file keeps its mode (defect 3)", async () => {
    const s = await scene();
    const victimLayer = join(s.shared, "layers", "a".repeat(64));
    await assert.rejects(
      s.unpack([
        [
          { type: "symlink", path: "s", target: victimLayer },
          { type: "link", path: "h", target: "s/file", mode: 0o6777 },
        ],
      ]),
      /hard link h to s\/file goes through the symlink s/,
    );
    assert.equal((await lstat(s.victimFile)).mode & 0o7777, 0o644, "the other image's file is neither world-writable nor setuid");
    await s.assertUntouched();
  });

  it("an entry under a symlink of the same layer is refused: file, directory, whiteout, opaque marker", async () => {
    for (const entry of [
      { type: "file", path: "lnk/planted", data: "x" },
      { type: "dir", path: "lnk/newdir" },
      { type: "whiteout", path: "lnk/secret" },
      { type: "opaque", dir: "lnk/dir" },
    ] satisfies TarEntry[]) {
      const s = await scene();
      await assert.rejects(s.unpack([[{ type: "dir", path: "lower" }], [{ type: "symlink", path: "lnk", target: s.host }, entry]]), /through the symlink lnk/);
      await s.assertUntouched();
    }
  });

  it("a directory replaced by a symlink is no longer a directory to write into", async () => {
    const s = await scene();
    await assert.rejects(
      s.unpack([
        [
          { type: "dir", path: "d" },
          { type: "file", path: "d/before", data: "x" },
          { type: "symlink", path: "d", target: s.host },
          { type: "file", path: "d/planted", data: "x" },
        ],
      ]),
      /through the symlink d/,
    );
    await s.assertUntouched();
  });

  it("an entry under a symlink of a lower layer gets its own directory in this layer, with no attributes taken from the host", async () => {
    const s = await scene();
    const staged = await s.unpack([[{ type: "symlink", path: "lnk", target: s.host }], [{ type: "file", path: "lnk/dir/planted", data: "x" }]]);
    for (const d of ["lnk", "lnk/dir"]) {
      const st = await lstat(join(staged, d));
      assert.ok(st.isDirectory(), `${d} is a directory of this layer`);
      assert.deepEqual([st.uid, st.mode & 0o7777], [0, 0o755], `${d} has the default owner and mode, not the host directory's`);
    }
    await s.assertUntouched();
  });

  it("'..' after a symlink is refused, in an entry's path and in a hard link's target", async () => {
    const s = await scene();
    await assert.rejects(
      s.unpack([
        [
          { type: "symlink", path: "lnk", target: join(s.host, "dir") },
          { type: "file", path: "lnk/../secret", data: "pwned" },
        ],
      ]),
      /leaves the layer/,
    );
    await s.assertUntouched();
    const t = await scene();
    await assert.rejects(
      t.unpack([[{ type: "symlink", path: "lnk", target: join(t.host, "dir") }], [{ type: "link", path: "leak", target: "lnk/../secret", mode: 0o644 }]]),
      /leaves the layer/,
    );
    await t.assertUntouched();
  });

  it("a whiteout of '.' or '..' is refused: it would delete the layer's own directory or the shared layers/ directory", async () => {
    for (const path of ["..", ".", "dir/.."]) {
      const s = await scene();
      await assert.rejects(s.unpack([[{ type: "dir", path: "dir" }], [{ type: "whiteout", path }]]), /whites out no name/);
      await s.assertUntouched();
    }
  });

  it("a hard link to a directory is refused, in this layer and in a lower one", async () => {
    const s = await scene();
    await assert.rejects(
      s.unpack([
        [
          { type: "dir", path: "d" },
          { type: "link", path: "h", target: "d", mode: 0o777 },
        ],
      ]),
      /hard link h to d: a directory/,
    );
    await s.assertUntouched();
    const t = await scene();
    await assert.rejects(t.unpack([[{ type: "dir", path: "d" }], [{ type: "link", path: "h", target: "d", mode: 0o777 }]]), /hard link h to d: a directory/);
    await t.assertUntouched();
  });

  it("a hard link to a symlink links the symlink itself: its mode and times do not reach what it points to", async () => {
    const s = await scene();
    const staged = await s.unpack([
      [
        { type: "symlink", path: "s", target: join(s.host, "secret") },
        { type: "link", path: "h", target: "s", mode: 0o6777 },
      ],
    ]);
    assert.ok((await lstat(join(staged, "h"))).isSymbolicLink());
    assert.equal((await lstat(join(s.host, "secret"))).mode & 0o7777, 0o600, "the host file is not made world-writable");
    await s.assertUntouched();
  });

  it("a directory replaced by a symlink later in the layer does not get the directory's times on the symlink's target", async () => {
    const s = await scene();
    const staged = await s.unpack([
      [
        { type: "dir", path: "d" },
        { type: "symlink", path: "d", target: join(s.host, "dir") },
      ],
    ]);
    assert.ok((await lstat(join(staged, "d"))).isSymbolicLink());
    await s.assertUntouched();
  });

  it("the staging directory is root-only while the layer is written, and takes the './' entry's owner and mode once it is complete", async () => {
    const root = await mkdtemp(join(tmpdir(), "kiln-staging-"));
    const dir = join(root, "layer");
    const seen: string[] = [];
    async function* watched(): AsyncGenerator<ReadEntry> {
      for await (const e of readTar(
        once(
          layerTar([
            { type: "dir", path: ".", mode: 0o775, uid: 1000, gid: 1000 },
            { type: "file", path: "f", data: "x" },
          ]),
        ),
      )) {
        const st = await lstat(dir);
        seen.push(`${st.uid} ${(st.mode & 0o7777).toString(8)}`);
        yield e;
      }
    }
    await unpackLayer(watched(), { dir, parents: [] });
    assert.deepEqual(seen, ["0 700", "0 700"], "no other user can enter it meanwhile");
    const st = await lstat(dir);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1000, 0o775]);
    await rm(root, { recursive: true, force: true });
  });
});
