/** Disk usage of a directory tree as containerd counts it: allocated blocks, and inodes counted once per hard-link group. */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

export interface Usage {
  size: number;
  inodes: number;
}

export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<number>();
  let size = 0;
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (seen.has(st.ino)) return;
    seen.add(st.ino);
    size += st.blocks * 512;
    if (st.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(root);
  return { size, inodes: seen.size };
}
