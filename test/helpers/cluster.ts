/** A scheduler, seed peers and peers as separate processes on loopback. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UPLOAD_CREDENTIAL_HEADER } from "../../src/api/peer.js";
import { uploadCredentialFor } from "../../src/common/secret.js";
import { runKiln, spawnKiln, type KilnProcess } from "./proc.js";

export interface PeerHandle {
  name: string;
  proc: KilnProcess;
  dataDir: string;
  uploadPort: number;
  proxyUrl: string;
  metricsUrl: string;
}

export class TestCluster {
  scheduler!: KilnProcess;
  readonly peers: PeerHandle[] = [];
  private constructor(
    readonly dir: string,
    /** Flags every peer of this cluster gets (e.g. a keepalive shorter than the scheduler's host timeout). */
    private readonly peerArgs: string[],
    /** Environment every peer of this cluster gets (e.g. NODE_EXTRA_CA_CERTS for a TLS origin). */
    private readonly peerEnv: Record<string, string>,
    /** KILN_CLUSTER_SECRET of the scheduler and every peer, when the cluster has one. */
    readonly clusterSecret: string | undefined,
  ) {}

  static async start(
    opts: {
      schedulerArgs?: string[];
      schedulerEnv?: Record<string, string>;
      peerArgs?: string[];
      peerEnv?: Record<string, string>;
      /** Given to the scheduler and every peer (KILN_CLUSTER_SECRET). */
      clusterSecret?: string;
    } = {},
  ): Promise<TestCluster> {
    const secretEnv: Record<string, string> = opts.clusterSecret ? { KILN_CLUSTER_SECRET: opts.clusterSecret } : {};
    const c = new TestCluster(await mkdtemp(join(tmpdir(), "kiln-test-")), opts.peerArgs ?? [], { ...secretEnv, ...opts.peerEnv }, opts.clusterSecret);
    c.scheduler = await spawnKiln(["scheduler", "--host", "127.0.0.1", "--port", "0", ...(opts.schedulerArgs ?? [])], {
      env: { ...secretEnv, ...opts.schedulerEnv },
    });
    return c;
  }

  /** What a member presents to upload ports (the cluster must have been started with a secret). */
  uploadHeaders(): Record<string, string> {
    if (!this.clusterSecret) throw new Error("start the TestCluster with a clusterSecret to read its upload ports");
    return { [UPLOAD_CREDENTIAL_HEADER]: uploadCredentialFor(this.clusterSecret) };
  }

  get schedulerUrl(): string {
    return `http://127.0.0.1:${this.scheduler.ready.port as number}`;
  }

  async addPeer(name: string, opts: { seed?: boolean; args?: string[]; dataDir?: string; env?: Record<string, string> } = {}): Promise<PeerHandle> {
    const dataDir = opts.dataDir ?? join(this.dir, name);
    const args = ["peer", "--scheduler", this.schedulerUrl, "--host", "127.0.0.1", "--advertise-ip", "127.0.0.1", "--hostname", name];
    args.push("--port", "0", "--metrics-port", "0", "--data-dir", dataDir);
    if (opts.seed) args.push("--seed");
    else args.push("--proxy-port", "0");
    const proc = await spawnKiln([...args, ...this.peerArgs, ...(opts.args ?? [])], { env: { ...this.peerEnv, ...opts.env } });
    const r = proc.ready;
    const handle: PeerHandle = {
      name,
      proc,
      dataDir,
      uploadPort: r.uploadPort as number,
      proxyUrl: `http://127.0.0.1:${r.proxyPort as number}`,
      metricsUrl: `http://127.0.0.1:${r.metricsPort as number}/metrics`,
    };
    this.peers.push(handle);
    return handle;
  }

  /** `kiln get` through `peer`. */
  get(peer: PeerHandle, url: string, output: string, extra: string[] = []) {
    return runKiln(["get", url, "-O", output, "--peer", peer.proxyUrl, "--no-progress", ...extra]);
  }

  async stop(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.proc.kill()));
    await this.scheduler?.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Reads one counter/gauge value (summed over labels matching `labels`) from a Prometheus endpoint. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
