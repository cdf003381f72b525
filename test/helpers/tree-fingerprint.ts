/**
 * Everything about a directory tree that a write through an escaped path would change:
 * per entry its type, mode, owner, link count, size, content hash, symlink target,
 * and modification and change times (chmod, chown and new hard links move ctime).
 */
import { createHash } from "node:crypto";
import { lstat, readFile, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";

export async function treeFingerprint(root: string, opts: { skip?: (rel: string) => boolean } = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    const abs = join(root, rel);
    const st = await lstat(abs);
    let what = `mode=${st.mode.toString(8)} owner=${st.uid}:${st.gid} nlink=${st.nlink} mtime=${st.mtimeMs} ctime=${st.ctimeMs}`;
    if (st.isFile())
      what += ` size=${st.size} sha256=${createHash("sha256")
        .update(await readFile(abs))
        .digest("hex")}`;
    if (st.isSymbolicLink()) what += ` target=${await readlink(abs)}`;
    out[rel || "."] = what;
    if (!st.isDirectory()) return;
    for (const name of (await readdir(abs)).sort()) {
      const child = rel ? `${rel}/${name}` : name;
      if (!opts.skip?.(child)) await walk(child);
    }
  };
  await walk("");
  return out;
}

/** Paths of regular files under root whose content contains `needle` (a host secret that must not leak into a layer). */
export async function filesContaining(root: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (rel: string) => {
    const abs = join(root, rel);
    const st = await lstat(abs).catch(() => undefined);
    if (st?.isFile() && (await readFile(abs)).includes(needle)) found.push(rel);
    if (st?.isDirectory()) for (const name of await readdir(abs)) await walk(rel ? `${rel}/${name}` : name);
  };
  await walk("");
  return found;
}
