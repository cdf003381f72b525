/**
 * A private containerd (own config, root, state and socket; needs root) with kiln's
 * proxy snapshotter registered as `kiln`, and the `ctr` / `ctr-remote` clients for it.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { credentials, Metadata } from "@grpc/grpc-js";
import { SnapshotsClient } from "../../src/snapshotter/proto.js";
import { prerequisitesMissing } from "./prereq.js";
import type { MountSpec } from "./rootfs.js";

const run = promisify(execFile);

/** Root, containerd, ctr, runc and (for lazy pulls) ctr-remote; under CI=true a missing one fails the suite. */
export function containerdToolsMissing(suite: string, extra: Record<string, string> = {}): Promise<string | undefined> {
  const root = process.getuid?.() === 0 ? [] : ["containerd and overlay mounts need root"];
  return prerequisitesMissing(
    suite,
    {
      containerd: "containerd",
      ctr: "containerd",
      runc: "runc",
      "docker-registry": "docker-registry",
      skopeo: "skopeo",
      getfattr: "attr",
      setfattr: "attr",
      busybox: "busybox-static",
      ...extra,
    },
    root,
  );
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms`);
}

export class Containerd {
  private proc?: ChildProcess;
  readonly log: string[] = [];
  constructor(
    readonly dir: string,
    /** Socket of kiln's snapshotter, registered as proxy plugin `kiln`. */
    private readonly snapshotterSocket?: string,
    /** Config appended as is (e.g. what `kiln config containerd --snapshotter` prints), instead of the proxy plugin block. */
    private readonly extraConfig?: string,
    /** Keep the CRI plugin (Kubernetes' image service) on, with registry hosts.toml files read from this directory. */
    private readonly cri?: { configPath: string },
  ) {}

  get sock(): string {
    return join(this.dir, "c.sock");
  }

  /** Blobs of containerd's content store, one file per sha256 hex. */
  get contentDir(): string {
    return join(this.dir, "root", "io.containerd.content.v1.content", "blobs", "sha256");
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const config = [
      "version = 2",
      `root = "${join(this.dir, "root")}"`,
      `state = "${join(this.dir, "state")}"`,
      this.cri ? "disabled_plugins = []" : 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = "${this.sock}"`,
      "[ttrpc]",
      `  address = "${join(this.dir, "c.sock.ttrpc")}"`,
      ...(this.extraConfig ? [this.extraConfig] : []),
      ...(this.cri ? ['[plugins."io.containerd.grpc.v1.cri".registry]', `  config_path = "${this.cri.configPath}"`] : []),
      ...(this.snapshotterSocket && !this.extraConfig
        ? ["[proxy_plugins]", "  [proxy_plugins.kiln]", '    type = "snapshot"', `    address = "${this.snapshotterSocket}"`]
        : []),
    ].join("\n");
    await writeFile(join(this.dir, "config.toml"), config);
    const proc = spawn("containerd", ["--config", join(this.dir, "config.toml")], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stdout!.on("data", (d: Buffer) => this.log.push(String(d)));
    proc.stderr!.on("data", (d: Buffer) => this.log.push(String(d)));
    await waitFor(`containerd in ${this.dir}`, async () => {
      if (proc.exitCode !== null) throw new Error(`containerd exited: ${this.log.join("").slice(-2000)}`);
      await run("ctr", ["--address", this.sock, "version"]);
      return true;
    });
  }

  ctr(args: string[], timeout = 180_000) {
    return run("ctr", ["--address", this.sock, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });
  }

  ctrRemote(args: string[], timeout = 180_000) {
    return run("ctr-remote", ["--address", this.sock, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    }
  }
}

/** containerd's own Snapshots service (on its socket), for snapshots the garbage collector must leave alone (a gc.root label). */
export async function createSnapshot(c: Containerd, snapshotter: string, kind: "View" | "Prepare", key: string, parent: string): Promise<MountSpec[]> {
  const client = new SnapshotsClient(`unix://${c.sock}`, credentials.createInsecure()) as unknown as Record<
    string,
    (req: unknown, md: Metadata, cb: (err: Error | null, res: { mounts: { type: string; source: string; options: string[] }[] }) => void) => void
  >;
  const md = new Metadata();
  md.set("containerd-namespace", "default");
  try {
    const res = await new Promise<{ mounts: { type: string; source: string; options: string[] }[] }>((resolve, reject) =>
      client[kind]!.call(client, { snapshotter, key, parent, labels: { "containerd.io/gc.root": new Date().toISOString() } }, md, (err, r) =>
        err ? reject(err) : resolve(r),
      ),
    );
    return res.mounts.map((m) => ({ Type: m.type, Source: m.source, Options: m.options }));
  } finally {
    (client as unknown as { close(): void }).close();
  }
}
