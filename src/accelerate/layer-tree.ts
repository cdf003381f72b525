/**
 * In-archive paths resolved inside one layer tree, confined the way containerd's
 * archive extraction confines them, without openat2 (Node has none): each component
 * is lstat'ed from the tree's root, and a symlink met on the way is reported, never
 * followed. Sound for trees nothing else writes while they are read: a private
 * staging directory, or a finished layer.
 */
import type { Stats } from "node:fs";
import { lstat } from "node:fs/promises";
import { join } from "node:path";

/** "./a/b/" → ["a", "b"]; an absolute name counts from the layer's root, as in tar; ".." is refused. */
export function archivePath(name: string): string[] {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`layer entry ${JSON.stringify(name)} leaves the layer ("..")`);
  return parts;
}

export type Lookup =
  | { kind: "found"; stats: Stats }
  | { kind: "absent" }
  /** A component on the way is a symlink: resolving further would follow it. */
  | { kind: "symlink"; at: string }
  /** A component on the way is a file or device (a whiteout, say): nothing lies below it. */
  | { kind: "not-a-directory"; at: string };

export async function lstatIfAny(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export class LayerTree {
  constructor(readonly root: string) {}

  /** The host path of in-archive components; only for paths whose directories were checked (lookup, or created here). */
  hostPath(parts: readonly string[]): string {
    return join(this.root, ...parts);
  }

  async lookup(parts: readonly string[]): Promise<Lookup> {
    if (parts.length === 0) return { kind: "found", stats: await lstat(this.root) };
    for (let i = 1; i < parts.length; i++) {
      const dir = await lstatIfAny(this.hostPath(parts.slice(0, i)));
      if (!dir) return { kind: "absent" };
      const at = parts.slice(0, i).join("/");
      if (dir.isSymbolicLink()) return { kind: "symlink", at };
      if (!dir.isDirectory()) return { kind: "not-a-directory", at };
    }
    const st = await lstatIfAny(this.hostPath(parts));
    return st ? { kind: "found", stats: st } : { kind: "absent" };
  }
}
