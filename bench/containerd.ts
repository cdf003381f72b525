/**
 * A private containerd for the image-pull rows (its own config, root, state and
 * socket in a temp dir, as test/integration/mirror.test.ts runs it), so `ctr images
 * pull` can be timed straight from the registry and through a peer as its mirror.
 * Needs root and Debian's containerd; the rows are left out otherwise.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { KILN_BIN } from "../test/helpers/proc.js";
import { onCleanup, spawnTracked } from "./procs.js";

const run = promisify(execFile);

/** Why the ctr rows cannot run here, or undefined when they can. */
export async function containerdMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "containerd needs root";
  for (const c of ["containerd", "ctr"]) {
    try {
      await run("sh", ["-c", `command -v ${c}`]);
    } catch {
      return `${c} is not installed (apt-get install containerd)`;
    }
  }
  return undefined;
}

export class BenchContainerd {
  private proc?: ChildProcess;
  private log = "";
  private unregister?: () => void;

  constructor(private readonly dir: string) {}

  private get sock(): string {
    return join(this.dir, "c.sock");
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const config = [
      "version = 2",
      `root = "${join(this.dir, "root")}"`,
      `state = "${join(this.dir, "state")}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = "${this.sock}"`,
      "[ttrpc]",
      `  address = "${join(this.dir, "c.sock.ttrpc")}"`,
    ].join("\n");
    await writeFile(join(this.dir, "config.toml"), config);
    const proc = spawnTracked("containerd", ["--config", join(this.dir, "config.toml")], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.unregister = onCleanup(() => this.stop());
    const keep = (d: Buffer) => (this.log = (this.log + d).slice(-4096));
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    for (let i = 0; ; i++) {
      if (proc.exitCode !== null) throw new Error(`containerd exited: ${this.log.slice(-1000)}`);
      try {
        await run("ctr", ["--address", this.sock, "version"]);
        return;
      } catch {
        if (i > 100) throw new Error(`containerd in ${this.dir} did not answer within 20 s`);
        await sleep(200);
      }
    }
  }

  /** `ctr images pull` (native snapshotter, so the layers are unpacked too); resolves to its wall time in ms. */
  async pull(ref: string, extra: string[]): Promise<number> {
    const t0 = performance.now();
    await run("ctr", ["--address", this.sock, "images", "pull", "--snapshotter", "native", "--plain-http", ...extra, ref], { timeout: 600_000 });
    return performance.now() - t0;
  }

  async stop(): Promise<void> {
    this.unregister?.();
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  }
}

/** A hosts dir that makes containerd use `peerUrl` as the mirror of `registryHost` (what `kiln config containerd` prints). */
export async function containerdHostsDir(dir: string, peerUrl: string, registryHost: string): Promise<string> {
  const { stdout } = await run(process.execPath, [KILN_BIN, "config", "containerd", "--peer", peerUrl, "--registry", registryHost, "--content-only"]);
  await mkdir(join(dir, registryHost), { recursive: true });
  await writeFile(join(dir, registryHost, "hosts.toml"), stdout);
  return dir;
}
