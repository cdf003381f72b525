/** The layer reader and unpacker on crafted tarballs: what they write, and what they refuse to write. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdtemp, readFile, readdir, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTar } from "../../src/accelerate/tar-reader.js";
import { unpackLayer } from "../../src/accelerate/unpack.js";
import { chainIdsOf } from "../../src/accelerate/chain.js";
import { chainIds, layerTar, type TarEntry } from "../helpers/layer-tar.js";
import { prerequisitesMissing } from "../helpers/prereq.js";

async function* chunked(b: Buffer, size = 700): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

/** Owners, device nodes and trusted xattrs need root: a skip locally, a failure under CI. */
const needsRoot = await prerequisitesMissing("layer unpacker test", { mknod: "coreutils", setfattr: "attr" }, process.getuid?.() === 0 ? [] : ["needs root"]);

async function unpack(entries: TarEntry[], parents: string[] = []) {
  const dir = join(await mkdtemp(join(tmpdir(), "kiln-unpack-")), "layer");
  const stats = await unpackLayer(readTar(chunked(layerTar(entries))), { dir, parents });
  return { dir, stats };
}

describe("layer tar reader", () => {
  it("reads PAX paths over 100 bytes, binary xattrs, devices and links across chunk boundaries", async () => {
    const long = `a/${"b".repeat(120)}/c.txt`;
    const tar = layerTar([
      { type: "file", path: long, data: "x".repeat(1000), xattrs: { "user.bin": Buffer.from([0, 0xff, 0x0a]) } },
      { type: "char", path: "null", major: 1, minor: 3 },
      { type: "link", path: "hard", target: long, mode: 0o600 },
    ]);
    const seen = [];
    for await (const e of readTar(chunked(tar, 97))) {
      let bytes = 0;
      for await (const c of e.body) bytes += c.length;
      seen.push({
        path: e.header.path,
        type: e.header.type,
        bytes,
        xattr: e.header.xattrs.get("user.bin")?.toString("hex"),
        dev: [e.header.devmajor, e.header.devminor],
      });
    }
    assert.deepEqual(seen, [
      { path: long, type: "file", bytes: 1000, xattr: "00ff0a", dev: [0, 0] },
      { path: "null", type: "char", bytes: 0, xattr: undefined, dev: [1, 3] },
      { path: "hard", type: "link", bytes: 0, xattr: undefined, dev: [0, 0] },
    ]);
  });

  it("rejects a truncated tarball and a corrupted header", async () => {
    const tar = layerTar([{ type: "file", path: "f", data: "y".repeat(2000) }]);
    await assert.rejects(async () => {
      for await (const e of readTar(chunked(tar.subarray(0, 1200)))) for await (const _ of e.body) void _;
    }, /ends in the middle/);
    const bad = Buffer.from(tar);
    bad[10] = 0x41;
    await assert.rejects(async () => {
      for await (const _ of readTar(chunked(bad))) void _;
    }, /checksum/);
  });

  it("computes containerd's chain IDs", () => {
    const d = [`sha256:${"1".repeat(64)}`, `sha256:${"2".repeat(64)}`, `sha256:${"3".repeat(64)}`];
    assert.deepEqual(chainIdsOf(d), chainIds(d));
    assert.equal(chainIdsOf(d)[0], d[0]);
  });
});

describe("layer unpacker", { skip: needsRoot ?? false }, () => {
  it("writes files, modes, owners, symlinks and hard links", async () => {
    const { dir, stats } = await unpack([
      { type: "dir", path: "d", mode: 0o750, uid: 7, gid: 8 },
      { type: "file", path: "d/f", data: "hello", mode: 0o4711, uid: 7, gid: 8 },
      { type: "symlink", path: "d/l", target: "../etc/x" },
      { type: "link", path: "d/h", target: "d/f", mode: 0o4711, uid: 7, gid: 8 },
    ]);
    assert.equal(stats.entries, 4);
    const f = await stat(join(dir, "d/f"));
    assert.deepEqual([f.mode & 0o7777, f.uid, f.gid, f.nlink], [0o4711, 7, 8, 2]);
    assert.equal(await readFile(join(dir, "d/f"), "utf8"), "hello");
    assert.equal(await readlink(join(dir, "d/l")), "../etc/x");
    assert.equal((await stat(join(dir, "d"))).mode & 0o7777, 0o750);
    await rm(join(dir, ".."), { recursive: true });
  });

  it("drops whiteouts in a bottom layer; in an upper one a missing parent takes the lower layer's attributes", async () => {
    const lower = await unpack([
      { type: "dir", path: "p", mode: 0o700, uid: 5, gid: 6 },
      { type: "file", path: "p/gone", data: "" },
    ]);
    const bottom = await unpack([{ type: "whiteout", path: "x/gone" }]);
    assert.deepEqual(await readdir(bottom.dir), []);
    const upper = await unpack([{ type: "whiteout", path: "p/gone" }], [lower.dir]);
    const p = await stat(join(upper.dir, "p"));
    assert.deepEqual([p.mode & 0o7777, p.uid, p.gid], [0o700, 5, 6]);
    const wh = await lstat(join(upper.dir, "p/gone"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
    for (const d of [lower, bottom, upper]) await rm(join(d.dir, ".."), { recursive: true });
  });

  it("copies up a hard link's target from a lower layer", async () => {
    const lower = await unpack([{ type: "file", path: "a", data: "lower", mode: 0o640 }]);
    const upper = await unpack([{ type: "link", path: "b", target: "a", mode: 0o640 }], [lower.dir]);
    assert.equal((await stat(join(upper.dir, "b"))).nlink, 2);
    assert.equal(await readFile(join(upper.dir, "a"), "utf8"), "lower");
    for (const d of [lower, upper]) await rm(join(d.dir, ".."), { recursive: true });
  });

  it("refuses entries that would leave the layer: '..', and paths through a symlink of the layer", async () => {
    await assert.rejects(unpack([{ type: "file", path: "../escape", data: "x" }]), /leaves the layer/);
    await assert.rejects(
      unpack([
        { type: "symlink", path: "etc", target: "/etc" },
        { type: "file", path: "etc/evil", data: "x" },
      ]),
      /through the symlink/,
    );
    await assert.rejects(stat("/etc/evil"));
    await assert.rejects(unpack([{ type: "link", path: "h", target: "../../etc/passwd", mode: 0o644 }]), /leaves the layer/);
  });
});
