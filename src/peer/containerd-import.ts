/**
 * Makes the node's containerd hold an image, pulled through this peer's mirror with
 * `ctr images pull --hosts-dir` (the hosts.toml `kiln config containerd` prints), so
 * kubelet with IfNotPresent starts a pod without a registry round trip. A pull of a
 * digest containerd already has under that name is skipped.
 *
 * A private image's credentials never reach ctr's command line (any process can read
 * it) and ctr reads a password only from a terminal: the peer answers the registry's
 * challenge itself and puts the resulting Authorization (Basic, or the Bearer token the
 * registry's token service gave for this repository) in a hosts.toml of its own for
 * this one pull, in a 0700 directory, removed when ctr ends.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { containerdHostsToml } from "../common/containerd-hosts.js";
import type { ImageImportReply, ImageImportRequest } from "../api/peer.js";
import { parseImageName, formatImageName, imageRef, type ImageName } from "../registry/image-name.js";
import { RegistryClient, type RegistryCredentials } from "../registry/client.js";

/** Per-pull hosts directories (they hold a credential) are named so; a peer that died mid-pull leaves them for the next start. */
const PRIVATE_HOSTS_PREFIX = "private-pull-";

const run = promisify(execFile);

export interface ContainerdImportOptions {
  /** containerd's socket. */
  address: string;
  /** Kubernetes' namespace is k8s.io. */
  namespace: string;
  /** The ctr binary. */
  ctr: string;
  /** Unpack for this snapshotter (containerd's default when absent; the one the CRI plugin uses on a node). */
  snapshotter?: string;
  /** Where the peer writes the hosts.toml that points containerd at it. */
  hostsDir: string;
  /** This peer's proxy (the mirror containerd pulls through). */
  proxyUrl: string;
}

export class ContainerdImporter {
  private prepared: Promise<void> | undefined;

  constructor(
    private readonly opts: ContainerdImportOptions,
    private readonly log: Logger,
  ) {}

  private ctr(args: string[], timeoutMs: number) {
    return run(this.opts.ctr, ["--address", this.opts.address, "--namespace", this.opts.namespace, ...args], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
  }

  /** The _default hosts.toml: every registry through this peer (containerd names the upstream with ?ns=). */
  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await mkdir(this.opts.hostsDir, { recursive: true, mode: 0o700 });
      for (const name of await readdir(this.opts.hostsDir)) {
        if (name.startsWith(PRIVATE_HOSTS_PREFIX)) await rm(join(this.opts.hostsDir, name), { recursive: true, force: true });
      }
      await writeHostsToml(this.opts.hostsDir, this.opts.proxyUrl, {});
    })();
    return this.prepared;
  }

  /** A hosts directory for one pull of a private image, with the registry's Authorization for it; `remove` deletes it. */
  private async privateHostsDir(name: ImageName, plainHttp: boolean, credentials: RegistryCredentials): Promise<{ dir: string; remove(): Promise<void> }> {
    const authorization = await registryAuthorization(name, plainHttp, credentials);
    const dir = await mkdtemp(join(this.opts.hostsDir, PRIVATE_HOSTS_PREFIX));
    const remove = () => rm(dir, { recursive: true, force: true });
    try {
      await writeHostsToml(dir, this.opts.proxyUrl, authorization ? { Authorization: authorization } : {});
    } catch (err) {
      await remove();
      throw err;
    }
    return { dir, remove };
  }

  /** The digest containerd has under `ref`, if any. */
  private async current(ref: string): Promise<string | undefined> {
    const { stdout } = await this.ctr(["images", "ls", `name==${ref}`], 30_000);
    // REF TYPE DIGEST SIZE PLATFORMS LABELS
    const row = stdout.split("\n").find((l) => l.startsWith(`${ref} `));
    return row?.split(/\s+/)[2];
  }

  async import(req: ImageImportRequest): Promise<ImageImportReply> {
    let name: ImageName;
    let ref: string;
    try {
      name = parseImageName(req.image);
      ref = formatImageName(name);
    } catch (err) {
      throw new KilnError("BAD_REQUEST", (err as Error).message);
    }
    // containerd names Docker Hub images docker.io/…, as kubelet asks for them.
    if (req.digest && (await this.current(ref).catch(() => undefined)) === req.digest) {
      return { imported: true, detail: `containerd already holds ${ref} at ${req.digest}` };
    }
    await this.prepare();
    let hosts: { dir: string; remove(): Promise<void> } = { dir: this.opts.hostsDir, remove: async () => {} };
    if (req.credentials) {
      try {
        hosts = await this.privateHostsDir(name, req.plainHttp, req.credentials);
      } catch (err) {
        throw new KilnError(
          "UNAVAILABLE",
          `containerd could not pull ${ref}: the registry did not accept the schedule's credentials: ${(err as Error).message}`,
        );
      }
    }
    const snapshotter = this.opts.snapshotter ? ["--snapshotter", this.opts.snapshotter] : [];
    const args = [
      "images",
      "pull",
      ...snapshotter,
      "--hosts-dir",
      hosts.dir,
      ...(req.plainHttp ? ["--plain-http"] : []),
      ...(req.platform ? ["--platform", req.platform] : []),
      // The API refuses references that look like options; "--" makes sure ctr never reads one as such.
      "--",
      ref,
    ];
    try {
      await this.ctr(args, 15 * 60_000);
    } catch (err) {
      const e = err as Error & { stderr?: string };
      const why = (e.stderr || e.message).trim().split("\n").slice(-1)[0] ?? e.message;
      throw new KilnError("UNAVAILABLE", `containerd could not pull ${ref} through this peer: ${why}`);
    } finally {
      await hosts.remove();
    }
    const digest = await this.current(ref).catch(() => undefined);
    this.log.info({ image: ref, digest }, "image imported into containerd");
    return { imported: true, detail: `pulled into containerd (${this.opts.namespace}) through this peer${digest ? ` at ${digest}` : ""}` };
  }
}

async function writeHostsToml(hostsDir: string, peer: string, headers: Record<string, string>): Promise<void> {
  const { content } = containerdHostsToml({ peer, headers });
  await mkdir(join(hostsDir, "_default"), { recursive: true, mode: 0o700 });
  await writeFile(join(hostsDir, "_default", "hosts.toml"), content, { mode: 0o600 });
}

/**
 * The Authorization the image's registry accepts for pulling it with `credentials`
 * (answering its challenge to `/v2/`); undefined when the registry asks for none.
 */
async function registryAuthorization(name: ImageName, plainHttp: boolean, credentials: RegistryCredentials): Promise<string | undefined> {
  const ref = imageRef(name, plainHttp);
  const client = new RegistryClient({ ...credentials, timeoutMs: 30_000 });
  const res = await client.get(`${ref.origin}/v2/`, "application/json", ref);
  await res.body?.cancel();
  if (!res.ok) throw new KilnError("ORIGIN_STATUS", `registry ${name.host} answered ${res.status} ${res.statusText} to /v2/`, res.status);
  return client.authorization;
}
