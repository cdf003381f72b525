/**
 * The peer's proxy port as a registry mirror for containerd: Debian's
 * docker-registry (distribution) is the origin, skopeo pushes an image the test
 * builds, and two containerd instances pull it through two different peers.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { runKiln } from "../helpers/proc.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const BINARIES = ["docker-registry", "skopeo", "containerd", "ctr"];

/** Missing tools skip the suite locally; under CI they fail it. */
async function missingPrerequisites(): Promise<string | undefined> {
  const missing: string[] = [];
  for (const b of BINARIES) {
    try {
      await run("sh", ["-c", `command -v ${b}`]);
    } catch {
      missing.push(b);
    }
  }
  const problems = [...(missing.length ? [`missing binaries: ${missing.join(", ")}`] : []), ...(process.getuid?.() !== 0 ? ["containerd needs root"] : [])];
  if (!problems.length) return undefined;
  if (process.env.CI === "true") throw new Error(`registry mirror test cannot run under CI: ${problems.join("; ")}`);
  return problems.join("; ");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject).listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms`);
}

/** A one-file ustar archive (a valid, uncompressed image layer). */
function tarOf(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => header.write(s.slice(0, len), off, len, "ascii");
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(data.length, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  put("        ", 148, 8);
  put("0", 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of header) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

interface Blob {
  digest: string;
  size: number;
  mediaType: string;
}

/** Writes an OCI image layout with `layerSizes` random single-file layers; returns the manifest's blobs. */
async function buildLayout(dir: string, layerSizes: number[]): Promise<{ layers: Blob[]; config: Blob; manifest: Blob }> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const put = async (data: Buffer, mediaType: string): Promise<Blob> => {
    const hex = sha256(data);
    await writeFile(join(dir, "blobs", "sha256", hex), data);
    return { digest: `sha256:${hex}`, size: data.length, mediaType };
  };
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const [i, size] of layerSizes.entries()) {
    const tar = tarOf(`layer-${i}.bin`, randomBytes(size));
    diffIds.push(`sha256:${sha256(tar)}`);
    // Compressed already, so that skopeo pushes the blobs as they are.
    layers.push(await put(gzipSync(tar, { level: 1 }), "application/vnd.oci.image.layer.v1.tar+gzip"));
  }
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const config = await put(
    Buffer.from(JSON.stringify({ architecture: arch, os: "linux", config: {}, rootfs: { type: "layers", diff_ids: diffIds } })),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = await put(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers })),
    "application/vnd.oci.image.manifest.v1+json",
  );
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));
  return { layers, config, manifest };
}

class Containerd {
  private proc!: ChildProcess;
  readonly log: string[] = [];
  constructor(readonly dir: string) {}
  get sock(): string {
    return join(this.dir, "c.sock");
  }
  get contentDir(): string {
    return join(this.dir, "root", "io.containerd.content.v1.content", "blobs", "sha256");
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
    this.proc = spawn("containerd", ["--config", join(this.dir, "config.toml")], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout!.on("data", (d: Buffer) => this.log.push(String(d)));
    this.proc.stderr!.on("data", (d: Buffer) => this.log.push(String(d)));
    await waitFor(`containerd in ${this.dir}`, async () => {
      if (this.proc.exitCode !== null) throw new Error(`containerd exited: ${this.log.join("").slice(-2000)}`);
      await run("ctr", ["--address", this.sock, "version"]);
      return true;
    });
  }
  ctr(args: string[]) {
    return run("ctr", ["--address", this.sock, ...args], { timeout: 120_000 });
  }
  async stop(): Promise<void> {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      await exited;
    }
  }
}

describe("the peer as a registry mirror for containerd", async () => {
  const skip = await missingPrerequisites();
  let dir: string;
  let registryPort: number;
  let registry: ChildProcess | undefined;
  const registryLog: string[] = [];
  let cluster: TestCluster;
  let image: Awaited<ReturnType<typeof buildLayout>>;
  const containerds: Containerd[] = [];
  const timings: Record<string, number> = {};

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-mirror-"));
    image = await buildLayout(join(dir, "layout"), [6 * MiB, 10 * MiB, 3 * MiB + 123]);
    registryPort = await freePort();
    const cfg = [
      "version: 0.1",
      "log:",
      "  level: info",
      "  accesslog:",
      "    disabled: false",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "registry")}`,
      "http:",
      `  addr: 127.0.0.1:${registryPort}`,
    ].join("\n");
    await writeFile(join(dir, "registry.yml"), cfg);
    registry = spawn("docker-registry", ["serve", join(dir, "registry.yml")], { stdio: ["ignore", "pipe", "pipe"] });
    registry.stdout!.on("data", (d: Buffer) => registryLog.push(String(d)));
    registry.stderr!.on("data", (d: Buffer) => registryLog.push(String(d)));
    await waitFor("docker-registry", async () => (await fetch(`http://127.0.0.1:${registryPort}/v2/`)).ok);
    await run("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", `oci:${join(dir, "layout")}:v1`, `docker://127.0.0.1:${registryPort}/test/app:v1`], { timeout: 120_000 });
    const head = await fetch(`http://127.0.0.1:${registryPort}/v2/test/app/manifests/v1`, { method: "HEAD", headers: { accept: image.manifest.mediaType } });
    assert.equal(head.headers.get("docker-content-digest"), image.manifest.digest, "the registry holds the manifest as built");
    cluster = await TestCluster.start();
  });

  after(async () => {
    await Promise.all(containerds.map((c) => c.stop()));
    await cluster?.stop();
    if (registry && registry.exitCode === null) {
      const exited = new Promise((r) => registry!.once("exit", r));
      registry.kill("SIGTERM");
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log(`# pull times (ms): ${JSON.stringify(timings)}`);
  });

  /** GETs of `digest` in the registry's access log that it answered with 200. */
  const blobGets = (digest: string) =>
    registryLog
      .join("")
      .split("\n")
      .filter((l) => l.includes(`"GET /v2/test/app/blobs/${digest}`) && /" 200 /.test(l)).length;

  /**
   * Writes the hosts.toml `kiln config containerd` prints, pointing containerd at `peer`:
   * for this registry (upstream named by the X-Dragonfly-Registry header), or the
   * `_default` catch-all (upstream from containerd's `ns=`).
   */
  const hostsDir = async (name: string, peer: PeerHandle, catchAll: boolean): Promise<string> => {
    const d = join(dir, `hosts-${name}`);
    const host = `127.0.0.1:${registryPort}`;
    const r = await runKiln(["config", "containerd", "--peer", peer.proxyUrl, ...(catchAll ? [] : ["--registry", host])]);
    assert.equal(r.code, 0, r.stderr);
    const sub = catchAll ? "_default" : host;
    assert.ok(r.stdout.startsWith(`# /etc/containerd/certs.d/${sub}/hosts.toml`), r.stdout);
    await mkdir(join(d, sub), { recursive: true });
    await writeFile(join(d, sub, "hosts.toml"), r.stdout);
    return d;
  };

  const pull = async (name: string, args: string[]): Promise<Containerd> => {
    const c = new Containerd(join(dir, `containerd-${name}`));
    containerds.push(c);
    await c.start();
    const t0 = performance.now();
    await c.ctr(["images", "pull", "--snapshotter", "native", "--plain-http", ...args, `127.0.0.1:${registryPort}/test/app:v1`]);
    timings[name] = Math.round(performance.now() - t0);
    return c;
  };

  const assertContent = async (c: Containerd) => {
    for (const b of [image.manifest, image.config, ...image.layers]) {
      const hex = b.digest.slice("sha256:".length);
      assert.equal(sha256(await readFile(join(c.contentDir, hex))), hex, `${b.digest} in containerd's content store`);
    }
    const { stdout } = await c.ctr(["images", "ls", "-q"]);
    assert.ok(stdout.includes(`127.0.0.1:${registryPort}/test/app:v1`), stdout);
  };

  it("containerd pulls through peer A (hosts.toml for the registry) then peer B (_default hosts.toml); the registry serves each blob once", { skip }, async () => {
    await cluster.addPeer("seed-1", { seed: true });
    const peerA = await cluster.addPeer("peer-a");
    const peerB = await cluster.addPeer("peer-b");

    const a = await pull("via-peer-a", ["--hosts-dir", await hostsDir("a", peerA, false)]);
    await assertContent(a);
    const b = await pull("via-peer-b", ["--hosts-dir", await hostsDir("b", peerB, true)]);
    await assertContent(b);

    for (const blob of [image.config, ...image.layers]) assert.equal(blobGets(blob.digest), 1, `registry GETs of ${blob.digest}`);
    // Both peers logged serving through the mirror (not containerd falling back to the registry).
    for (const p of [peerA, peerB]) assert.ok(p.proc.lines.some((l) => l.includes(image.layers[0]!.digest.slice(7))), `${p.name} handled the layer`);
  });

  it("answers like a registry: forwarded manifests, blob headers, ranges, and a clear error without an upstream", { skip }, async () => {
    const peer = cluster.peers.find((p) => p.name === "peer-a")!;
    const registryHeader = { "x-dragonfly-registry": `http://127.0.0.1:${registryPort}` };
    const v2 = await fetch(`${peer.proxyUrl}/v2/`, { headers: registryHeader });
    assert.equal(v2.status, 200);
    assert.equal(v2.headers.get("docker-distribution-api-version"), "registry/2.0");
    const m = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/v1?ns=127.0.0.1:${registryPort}`, { headers: { accept: image.manifest.mediaType } });
    assert.equal(m.status, 200);
    assert.equal(m.headers.get("docker-content-digest"), image.manifest.digest);
    assert.equal(m.headers.get("content-type"), image.manifest.mediaType);
    assert.equal(sha256(Buffer.from(await m.arrayBuffer())), image.manifest.digest.slice(7));
    const missing = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/nope`, { headers: registryHeader });
    assert.equal(missing.status, 404, "the registry's 404 is passed through");
    const layer = image.layers[1]!;
    const blob = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/${layer.digest}`, { headers: registryHeader });
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get("docker-content-digest"), layer.digest);
    assert.equal(blob.headers.get("content-length"), String(layer.size));
    assert.equal(blob.headers.get("x-dragonfly-task-id"), layer.digest.slice(7));
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), layer.digest.slice(7));
    const part = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/${layer.digest}`, { headers: { ...registryHeader, range: "bytes=10-19" } });
    assert.equal(part.status, 206);
    assert.equal((await part.arrayBuffer()).byteLength, 10);
    const head = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/${layer.digest}`, { method: "HEAD", headers: registryHeader });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(layer.size));
    const none = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/v1`);
    assert.equal(none.status, 400);
    assert.match(await none.text(), /names no registry/);
    const push = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/uploads/`, { method: "POST", headers: registryHeader });
    assert.equal(push.status, 405);
    assert.equal(blobGets(layer.digest), 1, "still one registry GET of the layer");
  });

  it("for comparison, containerd pulls the same image straight from the registry", { skip }, async () => {
    const direct = await pull("direct", []);
    await assertContent(direct);
    for (const blob of image.layers) assert.equal(blobGets(blob.digest), 2, `registry GETs of ${blob.digest} after the direct pull`);
  });
});
