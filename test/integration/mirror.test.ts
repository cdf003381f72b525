/**
 * The peer's proxy port as a registry mirror for containerd: Debian's
 * docker-registry (distribution) is the origin, skopeo pushes an image the test
 * builds, and two containerd instances pull it through two different peers.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
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

/** Debian's docker-registry on a free loopback port, its access log kept in memory. */
class Registry {
  private proc: ChildProcess | undefined;
  readonly log: string[] = [];
  port = 0;
  constructor(readonly dir: string) {}
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }
  /** `htpasswd`: `user:password` to require basic auth with. */
  async start(opts: { htpasswd?: string } = {}): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.port = await freePort();
    const cfg = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: false", "storage:", "  filesystem:", `    rootdirectory: ${join(this.dir, "data")}`];
    cfg.push("http:", `  addr: 127.0.0.1:${this.port}`);
    if (opts.htpasswd) {
      const [user, password] = opts.htpasswd.split(":") as [string, string];
      // distribution accepts bcrypt only; libxcrypt (through perl's crypt) makes one.
      const { stdout: hash } = await run("perl", ["-e", `print crypt($ARGV[0], q($2b$05$) . $ARGV[1])`, password, randomBytes(16).toString("base64").replace(/[^A-Za-z0-9]/g, "").padEnd(22, "a").slice(0, 22)]);
      assert.match(hash, /^\$2b\$05\$/, "bcrypt hash for htpasswd");
      await writeFile(join(this.dir, "htpasswd"), `${user}:${hash}\n`);
      cfg.push("auth:", "  htpasswd:", "    realm: kiln-test", `    path: ${join(this.dir, "htpasswd")}`);
    }
    await writeFile(join(this.dir, "registry.yml"), cfg.join("\n") + "\n");
    this.proc = spawn("docker-registry", ["serve", join(this.dir, "registry.yml")], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout!.on("data", (d: Buffer) => this.log.push(String(d)));
    this.proc.stderr!.on("data", (d: Buffer) => this.log.push(String(d)));
    await waitFor("docker-registry", async () => {
      if (this.proc!.exitCode !== null) throw new Error(`docker-registry exited: ${this.log.join("").slice(-2000)}`);
      const r = await fetch(`http://${this.host}/v2/`);
      return r.ok || r.status === 401;
    });
  }
  /** Pushes the OCI layout's `v1` to `<repo>:v1` with skopeo. */
  async push(layout: string, repo: string, creds?: string): Promise<void> {
    await run("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", ...(creds ? ["--dest-creds", creds] : []), `oci:${layout}:v1`, `docker://${this.host}/${repo}:v1`], { timeout: 120_000 });
  }
  /** GETs of `digest` in the access log that the registry answered with 200. */
  blobGets(repo: string, digest: string): number {
    return this.log
      .join("")
      .split("\n")
      .filter((l) => l.includes(`"GET /v2/${repo}/blobs/${digest}`) && /" 200 /.test(l)).length;
  }
  async stop(): Promise<void> {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc!.once("exit", r));
      this.proc.kill("SIGTERM");
      await exited;
    }
  }
}

describe("the peer as a registry mirror for containerd", async () => {
  const skip = await missingPrerequisites();
  let dir: string;
  let reg: Registry;
  let cluster: TestCluster;
  let image: Awaited<ReturnType<typeof buildLayout>>;
  const containerds: Containerd[] = [];
  const timings: Record<string, number> = {};

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-mirror-"));
    image = await buildLayout(join(dir, "layout"), [6 * MiB, 10 * MiB, 3 * MiB + 123]);
    reg = new Registry(join(dir, "registry"));
    await reg.start();
    await reg.push(join(dir, "layout"), "test/app");
    const head = await fetch(`http://${reg.host}/v2/test/app/manifests/v1`, { method: "HEAD", headers: { accept: image.manifest.mediaType } });
    assert.equal(head.headers.get("docker-content-digest"), image.manifest.digest, "the registry holds the manifest as built");
    // The registries of this test all listen on 127.0.0.1 (any port).
    cluster = await TestCluster.start({ peerArgs: ["--proxy-allow-host", "127.0.0.1"] });
  });

  after(async () => {
    await Promise.all(containerds.map((c) => c.stop()));
    await cluster?.stop();
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log(`# pull times (ms): ${JSON.stringify(timings)}`);
  });

  const blobGets = (digest: string) => reg.blobGets("test/app", digest);

  /**
   * Writes the hosts.toml `kiln config containerd` prints, pointing containerd at `peer`:
   * for this registry (upstream named by the X-Dragonfly-Registry header), or the
   * `_default` catch-all (upstream from containerd's `ns=`).
   */
  const hostsDir = async (name: string, peer: PeerHandle, catchAll: boolean, host = reg.host): Promise<string> => {
    const d = join(dir, `hosts-${name}`);
    const r = await runKiln(["config", "containerd", "--peer", peer.proxyUrl, ...(catchAll ? [] : ["--registry", host])]);
    assert.equal(r.code, 0, r.stderr);
    const sub = catchAll ? "_default" : host;
    assert.ok(r.stdout.startsWith(`# /etc/containerd/certs.d/${sub}/hosts.toml`), r.stdout);
    await mkdir(join(d, sub), { recursive: true });
    await writeFile(join(d, sub, "hosts.toml"), r.stdout);
    return d;
  };

  const pull = async (name: string, args: string[], ref = `${reg.host}/test/app:v1`): Promise<Containerd> => {
    const c = new Containerd(join(dir, `containerd-${name}`));
    containerds.push(c);
    await c.start();
    const t0 = performance.now();
    await c.ctr(["images", "pull", "--snapshotter", "native", "--plain-http", ...args, ref]);
    timings[name] = Math.round(performance.now() - t0);
    return c;
  };

  const assertContent = async (c: Containerd, img = image, ref = `${reg.host}/test/app:v1`) => {
    for (const b of [img.manifest, img.config, ...img.layers]) {
      const hex = b.digest.slice("sha256:".length);
      assert.equal(sha256(await readFile(join(c.contentDir, hex))), hex, `${b.digest} in containerd's content store`);
    }
    const { stdout } = await c.ctr(["images", "ls", "-q"]);
    assert.ok(stdout.includes(ref), stdout);
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
    const registryHeader = { "x-dragonfly-registry": `http://${reg.host}` };
    const v2 = await fetch(`${peer.proxyUrl}/v2/`, { headers: registryHeader });
    assert.equal(v2.status, 200);
    assert.equal(v2.headers.get("docker-distribution-api-version"), "registry/2.0");
    const m = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/v1?ns=${reg.host}`, { headers: { accept: image.manifest.mediaType } });
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

  it("a registry with basic auth: its 401 challenge reaches the client; with credentials containerd pulls through two peers", { skip }, async () => {
    const creds = "kiln:s3cret-pw";
    const authImage = await buildLayout(join(dir, "layout-auth"), [4 * MiB, 2 * MiB]);
    const secure = new Registry(join(dir, "registry-auth"));
    try {
      await secure.start({ htpasswd: creds });
      await secure.push(join(dir, "layout-auth"), "private/app", creds);
      const [peerA, peerB] = ["peer-a", "peer-b"].map((n) => cluster.peers.find((p) => p.name === n)!) as [PeerHandle, PeerHandle];
      const ref = `${secure.host}/private/app:v1`;

      const anon = await fetch(`${peerA.proxyUrl}/v2/private/app/manifests/v1?ns=${secure.host}`);
      assert.equal(anon.status, 401, "the registry's 401 is passed through");
      assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic realm="kiln-test"/);
      const anonBlob = await fetch(`${peerA.proxyUrl}/v2/private/app/blobs/${authImage.layers[0]!.digest}?ns=${secure.host}`);
      assert.equal(anonBlob.status, 401, "a blob GET without credentials gets the registry's 401");
      assert.match(anonBlob.headers.get("www-authenticate") ?? "", /^Basic realm="kiln-test"/);
      await anonBlob.arrayBuffer();
      const denied = await pull("auth-anonymous", ["--hosts-dir", await hostsDir("auth-anon", peerA, false, secure.host)], ref).then(
        () => undefined,
        (err: Error & { stderr?: string }) => err.stderr ?? err.message,
      );
      assert.ok(denied !== undefined, "a pull without credentials fails");
      assert.match(denied, /401|unauthorized/i);

      const a = await pull("auth-via-peer-a", ["--user", creds, "--hosts-dir", await hostsDir("auth-a", peerA, false, secure.host)], ref);
      await assertContent(a, authImage, ref);
      const b = await pull("auth-via-peer-b", ["--user", creds, "--hosts-dir", await hostsDir("auth-b", peerB, true, secure.host)], ref);
      await assertContent(b, authImage, ref);
      for (const blob of [authImage.config, ...authImage.layers]) assert.equal(secure.blobGets("private/app", blob.digest), 1, `registry GETs of ${blob.digest}`);
      // The credentials never show up in kiln's logs.
      const secret = Buffer.from(creds).toString("base64");
      for (const p of [...cluster.peers, { name: "scheduler", proc: cluster.scheduler }]) {
        const logs = [...p.proc.lines, ...p.proc.stderr].join("\n");
        assert.ok(!logs.includes(secret) && !logs.includes("s3cret-pw"), `${p.name} logged the credentials`);
      }
      // Nor in what the peers keep on disk besides content.
      for (const p of cluster.peers) {
        for (const f of await readdir(p.dataDir, { recursive: true, withFileTypes: true })) {
          if (!f.isFile() || f.name === "content") continue;
          const text = await readFile(join(f.parentPath ?? f.path, f.name), "latin1");
          assert.ok(!text.includes(secret) && !text.includes("s3cret-pw"), `${p.name} stored the credentials in ${f.name}`);
        }
      }
    } finally {
      await secure.stop();
    }
  });

  it("for comparison, containerd pulls the same image straight from the registry", { skip }, async () => {
    const direct = await pull("direct", []);
    await assertContent(direct);
    for (const blob of image.layers) assert.equal(blobGets(blob.digest), 2, `registry GETs of ${blob.digest} after the direct pull`);
  });
});
