/**
 * Applies a layer tarball to an empty directory in the format overlayfs reads as a
 * lower layer, as containerd's unpacker does for its overlayfs snapshotter: modes,
 * owners, times, symlinks, hard links, device nodes, xattrs; a whiteout `.wh.<name>`
 * becomes a 0/0 character device `<name>`, `.wh..wh..opq` sets
 * `trusted.overlay.opaque=y` on its directory. Needs root (owners, devices, trusted xattrs).
 */
import { createWriteStream } from "node:fs";
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, rm, symlink, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { mknod, setXattr } from "./fs-ops.js";
import type { TarEntry, TarHeader } from "./tar-reader.js";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

export interface UnpackOptions {
  /** An empty directory the layer is written into. */
  dir: string;
  /** Directories of the layers below, nearest first: whiteouts matter only when there are some, and hard links may point into them. */
  parents: string[];
}

export interface UnpackStats {
  entries: number;
  bytes: number;
}

/** "./a/b/" → ["a", "b"]; rejects ".." and anything else that would leave the layer. */
function components(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`layer entry ${JSON.stringify(path)} leaves the layer ("..")`);
  return parts;
}

export async function unpackLayer(entries: AsyncIterable<TarEntry>, opts: UnpackOptions): Promise<UnpackStats> {
  const symlinks = new Set<string>();
  const dirTimes: [string, number][] = [];
  const stats: UnpackStats = { entries: 0, bytes: 0 };
  // As a snapshot's fs directory: root-owned, 0755 (a "./" entry may change it).
  await mkdir(opts.dir, { mode: 0o755 });

  /** Missing parent directories take their attributes from the nearest layer below that has them (containerd's mkparent). */
  const ensureParent = async (parts: string[]) => {
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i);
      if (symlinks.has(rel.join("/"))) throw new Error(`layer entry ${parts.join("/")} goes through the symlink ${rel.join("/")}`);
      const path = join(opts.dir, ...rel);
      const st = await lstat(path).catch(() => undefined);
      if (st?.isDirectory()) continue;
      if (st) throw new Error(`layer entry ${parts.join("/")}: ${rel.join("/")} is not a directory`);
      await mkdir(path, { mode: 0o755 });
      for (const parent of opts.parents) {
        const below = await lstat(join(parent, ...rel)).catch(() => undefined);
        if (!below) continue;
        if (below.isDirectory()) {
          await lchown(path, below.uid, below.gid);
          await chmod(path, below.mode & 0o7777);
          dirTimes.push([path, below.mtimeMs / 1000]);
        }
        break;
      }
    }
  };

  const clear = async (path: string, keepDir: boolean) => {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    await rm(path, { recursive: true, force: true });
  };

  for await (const { header: h, body } of entries) {
    stats.entries++;
    const parts = components(h.path);
    const base = parts.at(-1) ?? "";
    if (base === OPAQUE) {
      await ensureParent(parts);
      const d = join(opts.dir, ...parts.slice(0, -1));
      await setXattr(d, "trusted.overlay.opaque", Buffer.from("y"));
      continue;
    }
    if (base.startsWith(WHITEOUT)) {
      // In the bottom layer there is nothing to delete.
      if (opts.parents.length === 0) continue;
      const target = [...parts.slice(0, -1), base.slice(WHITEOUT.length)];
      await ensureParent(target);
      const path = join(opts.dir, ...target);
      await clear(path, false);
      await mknod(path, "char", 0, 0);
      await lchown(path, h.uid, h.gid);
      continue;
    }
    if (parts.length === 0) {
      // "./": the layer's root directory itself.
      if (h.type === "dir") await applyMetadata(opts.dir, h, dirTimes);
      continue;
    }
    await ensureParent(parts);
    const path = join(opts.dir, ...parts);
    await clear(path, h.type === "dir");
    switch (h.type) {
      case "dir":
        await mkdir(path, { recursive: true, mode: 0o700 });
        break;
      case "file":
        await pipeline(Readable.from(body), createWriteStream(path, { mode: 0o600 }));
        stats.bytes += h.size;
        break;
      case "symlink":
        await symlink(h.linkname, path);
        symlinks.add(parts.join("/"));
        break;
      case "link":
        await link(await linkSource(h.linkname, opts), path);
        break;
      case "char":
      case "block":
        await mknod(path, h.type, h.devmajor, h.devminor);
        break;
      case "fifo":
        await mknod(path, "fifo");
        break;
    }
    await applyMetadata(path, h, dirTimes);
  }
  // Directory times last, deepest first: creating entries inside a directory changes its mtime.
  for (const [path, mtime] of dirTimes.reverse()) await utimes(path, mtime, mtime);
  return stats;
}

/**
 * A hard link's target in this layer, or in a layer below: then the file is copied up
 * first, as overlayfs would on write (the link needs an inode in this layer).
 */
async function linkSource(linkname: string, opts: UnpackOptions): Promise<string> {
  const parts = components(linkname);
  const own = join(opts.dir, ...parts);
  if (await lstat(own).catch(() => undefined)) return own;
  for (const p of opts.parents) {
    const lower = join(p, ...parts);
    const st = await lstat(lower).catch(() => undefined);
    if (!st) continue;
    if (!st.isFile()) break;
    await mkdir(dirname(own), { recursive: true, mode: 0o755 });
    await copyFile(lower, own);
    await lchown(own, st.uid, st.gid);
    await chmod(own, st.mode & 0o7777);
    return own;
  }
  throw new Error(`hard link to ${linkname}, which is in neither this layer nor the ones below`);
}

/** containerd's order: owner, then xattrs, then mode (chown clears setuid bits), then times. A hard link's header applies to the shared inode. */
async function applyMetadata(path: string, h: TarHeader, dirTimes: [string, number][]): Promise<void> {
  await lchown(path, h.uid, h.gid);
  for (const [name, value] of h.xattrs) await setXattr(path, name, value);
  if (h.type !== "symlink") await chmod(path, h.mode & 0o7777);
  if (h.type === "dir") dirTimes.push([path, h.mtime]);
  else if (h.type === "symlink") await lutimes(path, h.mtime, h.mtime);
  else await utimes(path, h.mtime, h.mtime);
}
