/**
 * A node's containerd hosts directory (/etc/containerd/certs.d) written from the peer's
 * allowHosts, so containerd sends to the peer exactly the registries the peer may reach.
 * A `_default` catch-all in front of a proxy that allows fewer hosts made containerd fall
 * back to the registry on every 403, and P2P was skipped without a word.
 */
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { containerdHostsToml } from "../common/containerd-hosts.js";

/** First line of every file kiln writes there: only such files are rewritten or removed. */
export const KILN_HOSTS_MARK = "# written by kiln config containerd --proxy-config from the peer's allowHosts; rewritten at each peer start";

/** Docker Hub's API host and the name containerd files its images under. */
const DOCKER_HUB = { apiHost: "registry-1.docker.io", name: "docker.io" } as const;
const CATCH_ALL = "_default";

export interface HostsDirPlan {
  /** Directory name under the hosts directory → hosts.toml content (without the mark). */
  files: Map<string, string>;
  /** allowHosts entries no hosts.toml can express, each with why. */
  skipped: string[];
}

/** What the hosts directory should hold for these allowHosts. */
export function planHostsDir(allowHosts: readonly string[], peer: string): HostsDirPlan {
  const files = new Map<string, string>();
  const skipped: string[] = [];
  for (const pattern of allowHosts) {
    if (pattern === "*") {
      files.set(CATCH_ALL, containerdHostsToml({ peer }).content);
    } else if (pattern.startsWith("*.")) {
      skipped.push(`${pattern}: containerd has no wildcard registry directory; list each registry by name to pull it through the peer`);
    } else if (pattern === DOCKER_HUB.name) {
      if (allowHosts.includes(DOCKER_HUB.apiHost)) continue;
      skipped.push(`${pattern}: Docker Hub is reached at ${DOCKER_HUB.apiHost}; allow that host and its ${DOCKER_HUB.name} directory is written`);
    } else {
      const registry = pattern === DOCKER_HUB.apiHost ? DOCKER_HUB.name : pattern;
      files.set(registry, containerdHostsToml({ peer, registry }).content);
    }
  }
  return { files, skipped };
}

async function readIfThere(file: string): Promise<string | undefined> {
  return readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
}

/**
 * Brings `root` in line with the plan: writes each file whole (rename), removes kiln's
 * files for registries no longer allowed (and the `_default` file an earlier peer start
 * wrote without the mark), leaves files kiln did not write alone. Returns one line per act.
 */
export async function syncHostsDir(root: string, plan: HostsDirPlan, peer: string): Promise<string[]> {
  const report = plan.skipped.map((s) => `skipped ${s}`);
  const unmarkedCatchAll = containerdHostsToml({ peer }).content;
  const writtenByKiln = (dir: string, content: string | undefined) =>
    content !== undefined && (content.startsWith(`${KILN_HOSTS_MARK}\n`) || (dir === CATCH_ALL && content === unmarkedCatchAll));
  const dirs = await readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw err;
  });
  for (const d of dirs) {
    if (!d.isDirectory() || plan.files.has(d.name)) continue;
    const file = join(root, d.name, "hosts.toml");
    if (!writtenByKiln(d.name, await readIfThere(file))) continue;
    await rm(file);
    await rmdir(join(root, d.name)).catch(() => undefined); // kept when something else lives there
    report.push(`removed ${file}`);
  }
  for (const [dir, content] of plan.files) {
    const file = join(root, dir, "hosts.toml");
    const existing = await readIfThere(file);
    if (existing !== undefined && !writtenByKiln(dir, existing)) {
      report.push(`left ${file} as it is: not written by kiln`);
      continue;
    }
    await mkdir(join(root, dir), { recursive: true });
    await writeFile(`${file}.kiln-new`, `${KILN_HOSTS_MARK}\n${content}`);
    await rename(`${file}.kiln-new`, file);
    report.push(`wrote ${file}`);
  }
  return report;
}
