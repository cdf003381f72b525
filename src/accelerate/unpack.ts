/**
 * Applies a layer tarball to an empty directory in the format overlayfs reads as a
 * lower layer, as containerd's unpacker does for its overlayfs snapshotter: modes,
 * owners, times, symlinks, hard links, device nodes, xattrs; a whiteout `.wh.<name>`
 * becomes a 0/0 character device `<name>`, `.wh..wh..opq` sets
 * `trusted.overlay.opaque=y` on its directory. Needs root (owners, devices, trusted xattrs).
 *
 * Confined to the directory (DESIGN "Trust"): every path, hard-link target and parent
 * is resolved component by component inside this layer's tree or a lower layer's, and a
 * symlink met on the way is refused, never followed; nothing is created through an
 * existing name (O_EXCL, O_NOFOLLOW). The directory is root-only (0700) until its own
 * attributes are applied at the end, so nothing else writes it meanwhile.
 */
import { constants } from "node:fs";
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from "node:fs/promises";
import { mknod, setXattr } from "./fs-ops.js";
import { hardLinkSource } from "./hard-link.js";
import { archivePath, LayerTree, lstatIfAny } from "./layer-tree.js";
import type { TarEntry, TarHeader } from "./tar-reader.js";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export interface UnpackOptions {
  /** A directory that does not exist yet: the layer is written into it. */
  dir: string;
  /** Directories of the layers below, nearest first: whiteouts matter only when there are some, and hard links may point into them. */
  parents: string[];
}

export interface UnpackStats {
  entries: number;
  bytes: number;
}

export async function unpackLayer(entries: AsyncIterable<TarEntry>, opts: UnpackOptions): Promise<UnpackStats> {
  const tree = new LayerTree(opts.dir);
  const lowers = opts.parents.map((p) => new LayerTree(p));
  const dirTimes: [string[], number][] = [];
  const stats: UnpackStats = { entries: 0, bytes: 0 };
  let rootHeader: TarHeader | undefined;
  await mkdir(opts.dir, { mode: 0o700 });

  // Directories of this layer already checked: only removeExisting can replace one (nothing else writes the tree).
  const knownDirs = new Set<string>();

  /** Every component of `dir` a real directory of this layer; missing ones take their attributes from the nearest layer below that has them (containerd's mkparent). */
  const ensureDirectory = async (dir: string[], entry: string) => {
    for (let i = 1; i <= dir.length; i++) {
      const rel = dir.slice(0, i);
      const key = rel.join("/");
      if (knownDirs.has(key)) continue;
      const path = tree.hostPath(rel);
      const st = await lstatIfAny(path);
      if (st?.isDirectory()) {
        knownDirs.add(key);
        continue;
      }
      if (st?.isSymbolicLink()) throw new Error(`layer entry ${entry} goes through the symlink ${rel.join("/")}`);
      if (st) throw new Error(`layer entry ${entry}: ${rel.join("/")} is not a directory`);
      await mkdir(path, { mode: 0o755 });
      knownDirs.add(key);
      for (const lower of lowers) {
        const below = await lower.lookup(rel);
        if (below.kind === "absent") continue;
        if (below.kind === "found" && below.stats.isDirectory()) {
          await lchown(path, below.stats.uid, below.stats.gid);
          await chmod(path, below.stats.mode & 0o7777);
          dirTimes.push([rel, below.stats.mtimeMs / 1000]);
        }
        break;
      }
    }
  };

  /** Removes what is at `path` (its parents checked), unless it is a directory to keep; true when one was kept. */
  const removeExisting = async (path: string, keepDir: boolean): Promise<boolean> => {
    const st = await lstatIfAny(path);
    if (!st) return false;
    if (keepDir && st.isDirectory()) return true;
    if (st.isDirectory()) knownDirs.clear();
    await rm(path, { recursive: true, force: true });
    return false;
  };

  for await (const { header: h, body } of entries) {
    stats.entries++;
    const parts = archivePath(h.path);
    const base = parts.at(-1) ?? "";
    if (base === OPAQUE) {
      const dir = parts.slice(0, -1);
      await ensureDirectory(dir, h.path);
      await setXattr(tree.hostPath(dir), "trusted.overlay.opaque", Buffer.from("y"));
      continue;
    }
    if (base.startsWith(WHITEOUT)) {
      const name = base.slice(WHITEOUT.length);
      if (name === "" || name === "." || name === "..") throw new Error(`layer entry ${JSON.stringify(h.path)} whites out no name in its directory`);
      // In the bottom layer there is nothing to delete.
      if (lowers.length === 0) continue;
      const target = [...parts.slice(0, -1), name];
      await ensureDirectory(target.slice(0, -1), h.path);
      const path = tree.hostPath(target);
      await removeExisting(path, false);
      await mknod(path, "char", 0, 0);
      await lchown(path, h.uid, h.gid);
      continue;
    }
    if (parts.length === 0) {
      // "./": the layer's root directory itself, applied last (it stays private until then).
      if (h.type === "dir") {
        rootHeader = h;
        dirTimes.push([[], h.mtime]);
      }
      continue;
    }
    await ensureDirectory(parts.slice(0, -1), h.path);
    const path = tree.hostPath(parts);
    const keptDir = await removeExisting(path, h.type === "dir");
    switch (h.type) {
      case "dir":
        if (!keptDir) await mkdir(path, { mode: 0o700 });
        break;
      case "file":
        await writeNewFile(path, body);
        stats.bytes += h.size;
        break;
      case "symlink":
        await symlink(h.linkname, path);
        break;
      case "link":
        await link(await hardLinkSource(h.path, h.linkname, tree, lowers, ensureDirectory), path);
        break;
      case "char":
      case "block":
        await mknod(path, h.type, h.devmajor, h.devminor);
        break;
      case "fifo":
        await mknod(path, "fifo");
        break;
    }
    // A hard link's header applies to the inode it shares, which may be a symlink's: never follow it.
    const isSymlink = h.type === "symlink" || (h.type === "link" && (await lstat(path)).isSymbolicLink());
    await applyAttributes(path, h, isSymlink);
    if (h.type === "dir") dirTimes.push([parts, h.mtime]);
    else await lutimes(path, h.mtime, h.mtime);
  }

  if (rootHeader) await applyAttributes(opts.dir, rootHeader, false);
  else await chmod(opts.dir, 0o755);
  // Directory times last, deepest first: creating entries inside a directory changes its mtime.
  for (const [parts, mtime] of dirTimes.reverse()) {
    const now = await tree.lookup(parts);
    // A directory replaced later in the layer (by a symlink, say) has no times of its own to set.
    if (now.kind === "found" && now.stats.isDirectory()) await utimes(tree.hostPath(parts), mtime, mtime);
  }
  return stats;
}

/** Creates the file (never through an existing name) and writes the entry's content into it. */
async function writeNewFile(path: string, body: AsyncIterable<Buffer>): Promise<void> {
  const fh = await open(path, NEW_FILE, 0o600);
  try {
    for await (const chunk of body) {
      for (let done = 0; done < chunk.length; ) done += (await fh.write(chunk, done)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
}

/** containerd's order: owner, then xattrs, then mode (chown clears setuid bits). */
async function applyAttributes(path: string, h: TarHeader, isSymlink: boolean): Promise<void> {
  await lchown(path, h.uid, h.gid);
  for (const [name, value] of h.xattrs) await setXattr(path, name, value);
  if (!isSymlink) await chmod(path, h.mode & 0o7777);
}
