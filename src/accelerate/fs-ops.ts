/**
 * The file operations Node has no API for: device nodes (mknod) and extended
 * attributes (setfattr, Debian package `attr`). Both are rare in a layer (whiteouts,
 * opaque directories, file capabilities), so one process per operation is fine.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export async function mknod(path: string, kind: "char" | "block" | "fifo", major = 0, minor = 0): Promise<void> {
  const args = kind === "fifo" ? ["-m", "0600", path, "p"] : ["-m", "0000", path, kind === "char" ? "c" : "b", String(major), String(minor)];
  try {
    await run("mknod", args);
  } catch (err) {
    throw new Error(`mknod ${path}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

/** Sets an xattr on the path itself (never through a symlink). */
export async function setXattr(path: string, name: string, value: Buffer): Promise<void> {
  try {
    await run("setfattr", ["-h", "-n", name, "-v", `0x${value.toString("hex")}`, "--", path]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error("setfattr is missing (apt-get install attr): layers with xattrs, opaque directories need it");
    throw new Error(`setfattr ${name} on ${path}: ${e.stderr?.trim() || e.message}`);
  }
}
