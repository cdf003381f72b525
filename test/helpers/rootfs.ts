/** What a container sees of a root filesystem, to compare two mounts of "the same" image. */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { lstat, readFile, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  /** The first path (sorted) of this file's hard-link group, when it has more than one name. */
  linkGroup?: string;
  /** Extended attributes, hex values (security.*, user.*; overlayfs hides its own trusted.overlay.*). */
  xattrs?: Record<string, string>;
}

/** Every xattr in the tree, read by one `getfattr -R` (Node has no xattr API). */
async function treeXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const { stdout } = await run("getfattr", ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "."], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      const p = line.slice("# file: ".length).replace(/^\.\/?/, "");
      current = {};
      out.set(p || "/", current);
    } else if (current && line.includes("=")) {
      const i = line.indexOf("=");
      current[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return out;
}

export async function describeTree(root: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const byInode = new Map<string, string[]>();
  const walk = async (rel: string) => {
    const abs = join(root, rel);
    const st = await lstat(abs);
    const type = st.isFile()
      ? "file"
      : st.isDirectory()
        ? "dir"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isCharacterDevice()
            ? "char"
            : st.isBlockDevice()
              ? "block"
              : st.isFIFO()
                ? "fifo"
                : "socket";
    const e: TreeEntry = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
    if (type === "file") {
      e.size = st.size;
      e.sha256 = createHash("sha256")
        .update(await readFile(abs))
        .digest("hex");
      if (st.nlink > 1) {
        const k = `${st.dev}:${st.ino}`;
        byInode.set(k, [...(byInode.get(k) ?? []), rel]);
      }
    }
    if (type === "symlink") e.target = await readlink(abs);
    if (type === "char" || type === "block") e.rdev = st.rdev;
    out[rel || "/"] = e;
    if (type === "dir") for (const name of (await readdir(abs)).sort()) await walk(rel ? `${rel}/${name}` : name);
  };
  await walk("");
  for (const [p, x] of await treeXattrs(root)) if (out[p] && Object.keys(x).length) out[p]!.xattrs = x;
  for (const paths of byInode.values()) {
    if (paths.length < 2) continue;
    const first = [...paths].sort()[0]!;
    for (const p of paths) out[p]!.linkGroup = first;
  }
  return out;
}

/** An xattr's raw value (getfattr from Debian's `attr`), or undefined when the file has none of that name. */
export async function getXattr(path: string, name: string): Promise<Buffer | undefined> {
  try {
    const { stdout } = await run("getfattr", ["-h", "--only-values", "-n", name, path], { encoding: "buffer" });
    return stdout;
  } catch {
    return undefined;
  }
}

/** A mount as `ctr snapshots ... --mounts` prints it (Go field names). */
export interface MountSpec {
  Type: string;
  Source: string;
  Options: string[] | null;
}

/** Mounts what a snapshotter answered (as containerd would) at `target`. */
export async function mountAll(specs: MountSpec[], target: string): Promise<void> {
  for (const spec of specs) {
    const m = { type: spec.Type, source: spec.Source, options: spec.Options ?? [] };
    if (m.type === "bind") {
      await run("mount", ["--bind", m.source, target]);
      if (m.options.includes("ro")) await run("mount", ["-o", "remount,bind,ro", target]);
    } else {
      await run("mount", ["-t", m.type, m.source, target, "-o", m.options.join(",")]);
    }
  }
}

export async function unmount(target: string): Promise<void> {
  await run("umount", [target]).catch(() => undefined);
}
