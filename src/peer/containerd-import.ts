/**
 * Makes the node's containerd hold an image, pulled through this peer's mirror with
 * `ctr images pull --hosts-dir` (the hosts.toml `kiln config containerd` prints), so
 * kubelet with IfNotPresent starts a pod without a registry round trip. A pull of a
 * digest containerd already has under that name is skipped.
 */
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { containerdHostsToml } from "../common/containerd-hosts.js";
import type { ImageImportReply, ImageImportRequest } from "../api/peer.js";
import { parseImageName, formatImageName } from "../registry/image-name.js";

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
      const { content } = containerdHostsToml({ peer: this.opts.proxyUrl });
      await mkdir(join(this.opts.hostsDir, "_default"), { recursive: true, mode: 0o700 });
      await writeFile(join(this.opts.hostsDir, "_default", "hosts.toml"), content, { mode: 0o600 });
    })();
    return this.prepared;
  }

  /** The digest containerd has under `ref`, if any. */
  private async current(ref: string): Promise<string | undefined> {
    const { stdout } = await this.ctr(["images", "ls", `name==${ref}`], 30_000);
    // REF TYPE DIGEST SIZE PLATFORMS LABELS
    const row = stdout.split("\n").find((l) => l.startsWith(`${ref} `));
    return row?.split(/\s+/)[2];
  }

  async import(req: ImageImportRequest): Promise<ImageImportReply> {
    let ref: string;
    try {
      ref = formatImageName(parseImageName(req.image));
    } catch (err) {
      throw new KilnError("BAD_REQUEST", (err as Error).message);
    }
    // containerd names Docker Hub images docker.io/…, as kubelet asks for them.
    if (req.digest && (await this.current(ref).catch(() => undefined)) === req.digest) {
      return { imported: true, detail: `containerd already holds ${ref} at ${req.digest}` };
    }
    await this.prepare();
    const snapshotter = this.opts.snapshotter ? ["--snapshotter", this.opts.snapshotter] : [];
    const args = [
      "images",
      "pull",
      ...snapshotter,
      "--hosts-dir",
      this.opts.hostsDir,
      ...(req.plainHttp ? ["--plain-http"] : []),
      ...(req.platform ? ["--platform", req.platform] : []),
      ref,
    ];
    try {
      await this.ctr(args, 15 * 60_000);
    } catch (err) {
      const e = err as Error & { stderr?: string };
      const why = (e.stderr || e.message).trim().split("\n").slice(-1)[0] ?? e.message;
      throw new KilnError("UNAVAILABLE", `containerd could not pull ${ref} through this peer: ${why}`);
    }
    const digest = await this.current(ref).catch(() => undefined);
    this.log.info({ image: ref, digest }, "image imported into containerd");
    return { imported: true, detail: `pulled into containerd (${this.opts.namespace}) through this peer${digest ? ` at ${digest}` : ""}` };
  }
}
