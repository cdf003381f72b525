/** Is the shared directory usable: a filesystem mounted there (not the node's root disk) that this process can write? */
import { readFile, realpath, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface SharedCheck {
  ready: boolean;
  /** The mount point it lives on. */
  mountPoint?: string;
  reason?: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function checkShared(shared: string): Promise<SharedCheck> {
  let real: string;
  try {
    real = await realpath(shared);
  } catch {
    return { ready: false, reason: `${shared} does not exist` };
  }
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => Boolean(m))
    .map(unescapeMount);
  const mountPoint = mounts.filter((m) => m === "/" || real === m || real.startsWith(`${m}/`)).sort((a, b) => b.length - a.length)[0];
  if (!mountPoint || mountPoint === "/") return { ready: false, mountPoint, reason: `${shared} is not on a mounted filesystem (it is on the root disk)` };
  const probe = join(real, `.kiln-probe-${process.pid}`);
  try {
    await writeFile(probe, "");
    await rm(probe);
  } catch (err) {
    return { ready: false, mountPoint, reason: `${shared} is not writable: ${(err as Error).message}` };
  }
  return { ready: true, mountPoint };
}
