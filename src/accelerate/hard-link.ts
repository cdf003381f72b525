/**
 * Where a hard link entry points: an entry of this layer or of a layer below, named by
 * its in-archive path and resolved without following any symlink. A file found only
 * below is copied up first, as overlayfs would on write (the link needs an inode in
 * this layer). Directories are refused, as link(2) would refuse them.
 */
import { constants } from "node:fs";
import { chmod, copyFile, lchown } from "node:fs/promises";
import { archivePath, type LayerTree, type Lookup } from "./layer-tree.js";

export type EnsureDirectory = (dir: string[], entry: string) => Promise<void>;

export async function hardLinkSource(entry: string, linkname: string, tree: LayerTree, lowers: LayerTree[], ensureDirectory: EnsureDirectory): Promise<string> {
  const parts = archivePath(linkname);
  const what = `hard link ${entry} to ${linkname}`;
  const refuse = (found: Lookup, where: string) => {
    if (found.kind === "symlink") throw new Error(`${what} goes through the symlink ${found.at}${where}`);
    if (found.kind === "found" && found.stats.isDirectory()) throw new Error(`${what}: a directory${where}`);
  };
  const here = await tree.lookup(parts);
  refuse(here, "");
  if (here.kind === "found") return tree.hostPath(parts);
  if (here.kind === "absent") {
    for (const lower of lowers) {
      const below = await lower.lookup(parts);
      refuse(below, " of a lower layer");
      if (below.kind === "absent") continue;
      if (below.kind === "found" && below.stats.isFile()) {
        await ensureDirectory(parts.slice(0, -1), entry);
        const own = tree.hostPath(parts);
        await copyFile(lower.hostPath(parts), own, constants.COPYFILE_EXCL);
        await lchown(own, below.stats.uid, below.stats.gid);
        await chmod(own, below.stats.mode & 0o7777);
        return own;
      }
      break;
    }
  }
  throw new Error(`${what}, which is in neither this layer nor the ones below`);
}
