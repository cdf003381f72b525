/**
 * The peer's proxy port as a registry mirror for containerd: Debian's
 * docker-registry (distribution) is the origin, skopeo pushes a multi-arch image
 * the test builds, and two containerd instances pull it through two different peers.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Containerd } from "../helpers/containerd.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { runKiln } from "../helpers/proc.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { buildOciImage, pushImage, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { REGISTRY_PASSWORD, REGISTRY_USER } from "../helpers/registry-fixtures.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** The platform `ctr images pull` picks from an index; the other one is never pulled. */
const HOST_PLATFORM = `linux/${process.arch === "x64" ? "amd64" : process.arch}`;
const OTHER_PLATFORM = HOST_PLATFORM === "linux/arm64" ? "linux/amd64" : "linux/arm64";

/** Missing tools skip the suite locally; under CI they fail it. */
function missingPrerequisites(): Promise<string | undefined> {
  const root = process.getuid?.() === 0 ? [] : ["containerd needs root"];
  return prerequisitesMissing(
    "registry mirror test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", containerd: "containerd", ctr: "containerd" },
    root,
  );
}

async function _waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms`);
}

/** A blob of the image's OCI layout, as pushed. */
function layoutBlob(img: BuiltImage, digest: string): Promise<Buffer> {
  return readFile(join(img.layout, "blobs", "sha256", digest.slice("sha256:".length)));
}

describe("the peer as a registry mirror for containerd", async () => {
  const skip = await missingPrerequisites();
  let dir: string;
  let reg: TestRegistry;
  let cluster: TestCluster;
  let image: BuiltImage;
  const containerds: Containerd[] = [];
  const timings: Record<string, number> = {};

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-mirror-"));
    image = await buildOciImage({ platforms: [HOST_PLATFORM, OTHER_PLATFORM], layers: 3, layerBytes: 4 * MiB });
    reg = await startRegistry("none");
    await pushImage(image, reg, "test/app");
    const head = await fetch(`${reg.url}/v2/test/app/manifests/${image.tag}`, { method: "HEAD", headers: { accept: OCI_INDEX } });
    assert.equal(head.headers.get("docker-content-digest"), image.digest, "the registry serves the tag as the index built");
    // The registries of this test all listen on 127.0.0.1 (any port).
    cluster = await TestCluster.start({ peerArgs: ["--proxy-allow-host", "127.0.0.1"] });
  });

  after(async () => {
    await Promise.all(containerds.map((c) => c.stop()));
    await cluster?.stop();
    await Promise.all([reg?.stop(), image?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log(`# pull times (ms): ${JSON.stringify(timings)}`);
  });

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

  const pull = async (name: string, args: string[], ref = `${reg.host}/test/app:${image.tag}`): Promise<Containerd> => {
    const c = new Containerd(join(dir, `containerd-${name}`));
    containerds.push(c);
    await c.start();
    const t0 = performance.now();
    await c.ctr(["images", "pull", "--snapshotter", "native", "--plain-http", ...args, ref]);
    timings[name] = Math.round(performance.now() - t0);
    return c;
  };

  /** containerd holds `ref` as `img` (its index, or its only manifest) and the host platform's manifest, config and layers, intact. */
  const assertContent = async (c: Containerd, img = image, ref = `${reg.host}/test/app:${img.tag}`) => {
    const host = img.platforms[HOST_PLATFORM]!;
    for (const d of new Set([img.digest, host.manifest, host.config, ...host.layers])) {
      const hex = d.slice("sha256:".length);
      assert.equal(sha256(await readFile(join(c.contentDir, hex))), hex, `${d} in containerd's content store`);
    }
    const { stdout } = await c.ctr(["images", "ls"]);
    const row = stdout.split("\n").find((l) => l.startsWith(`${ref} `));
    assert.ok(row?.includes(img.digest), `containerd lists ${ref} at ${img.digest}:\n${stdout}`);
  };

  it("containerd pulls a multi-arch image through peer A (hosts.toml for the registry) then peer B (_default hosts.toml); the registry serves each blob once", {
    skip,
  }, async () => {
    await cluster.addPeer("seed-1", { seed: true });
    const peerA = await cluster.addPeer("peer-a");
    const peerB = await cluster.addPeer("peer-b");

    const a = await pull("via-peer-a", ["--hosts-dir", await hostsDir("a", peerA, false)]);
    await assertContent(a);
    const b = await pull("via-peer-b", ["--hosts-dir", await hostsDir("b", peerB, true)]);
    await assertContent(b);

    const host = image.platforms[HOST_PLATFORM]!;
    for (const d of [host.config, ...host.layers]) assert.equal(reg.blobGets(d), 1, `registry GETs of ${d}`);
    const other = image.platforms[OTHER_PLATFORM]!;
    for (const d of [other.config, ...other.layers]) assert.equal(reg.blobGets(d), 0, `${OTHER_PLATFORM} blob ${d} was never fetched`);
    // A manifest by digest is content: through the swarm like a blob, so the registry sends it to the cluster once.
    const manifestGets = reg.requests().filter((r) => r === `GET /v2/test/app/manifests/${host.manifest}`).length;
    assert.equal(manifestGets, 1, "one GET of the host manifest for both pulls");
    // The tag is still asked of the registry on every pull (its answer may move).
    const tagAsks = reg.requests().filter((r) => r.endsWith(`/v2/test/app/manifests/${image.tag}`)).length;
    assert.ok(tagAsks >= 3, `the registry answered the tag on each pull, and the check in before() (${tagAsks})`);
    // Both peers logged serving through the mirror (not containerd falling back to the registry).
    for (const p of [peerA, peerB])
      assert.ok(
        p.proc.lines.some((l) => l.includes(host.layers[0]!.slice(7))),
        `${p.name} handled the layer`,
      );
  });

  it("answers like a registry: forwarded manifests, blob headers, ranges, and a clear error without an upstream", { skip }, async () => {
    const peer = cluster.peers.find((p) => p.name === "peer-a")!;
    const host = image.platforms[HOST_PLATFORM]!;
    const registryHeader = { "x-dragonfly-registry": reg.url };
    const v2 = await fetch(`${peer.proxyUrl}/v2/`, { headers: registryHeader });
    assert.equal(v2.status, 200);
    assert.equal(v2.headers.get("docker-distribution-api-version"), "registry/2.0");
    // The tag (an index), then the host platform's manifest by digest.
    for (const [reference, digest, mediaType] of [
      [image.tag, image.digest, OCI_INDEX],
      [host.manifest, host.manifest, OCI_MANIFEST],
    ] as const) {
      const m = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/${reference}?ns=${reg.host}`, { headers: { accept: mediaType } });
      assert.equal(m.status, 200, reference);
      assert.equal(m.headers.get("docker-content-digest"), digest);
      assert.equal(m.headers.get("content-type"), mediaType);
      assert.equal(sha256(Buffer.from(await m.arrayBuffer())), digest.slice(7));
    }
    const missing = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/nope`, { headers: registryHeader });
    assert.equal(missing.status, 404, "the registry's 404 is passed through");
    const layer = host.layers[1]!;
    const bytes = await layoutBlob(image, layer);
    const blob = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/${layer}`, { headers: registryHeader });
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get("docker-content-digest"), layer);
    assert.equal(blob.headers.get("content-length"), String(bytes.length));
    assert.equal(blob.headers.get("x-dragonfly-task-id"), layer.slice(7));
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), layer.slice(7));
    const part = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/${layer}`, { headers: { ...registryHeader, range: "bytes=10-19" } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(10, 20));
    const head = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/${layer}`, { method: "HEAD", headers: registryHeader });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(bytes.length));
    const none = await fetch(`${peer.proxyUrl}/v2/test/app/manifests/${image.tag}`);
    assert.equal(none.status, 400);
    assert.match(await none.text(), /names no registry/);
    const push = await fetch(`${peer.proxyUrl}/v2/test/app/blobs/uploads/`, { method: "POST", headers: registryHeader });
    assert.equal(push.status, 405);
    assert.equal(reg.blobGets(layer), 1, "still one registry GET of the layer");
  });

  it("a registry with basic auth: its 401 challenge reaches the client; with credentials containerd pulls through two peers", { skip }, async () => {
    const creds = `${REGISTRY_USER}:${REGISTRY_PASSWORD}`;
    // One platform: a plain manifest under the tag, the other shape containerd resolves.
    const authImage = await buildOciImage({ platforms: [HOST_PLATFORM], layers: 2, layerBytes: 3 * MiB });
    const secure = await startRegistry("basic");
    try {
      await pushImage(authImage, secure, "private/app");
      const [peerA, peerB] = ["peer-a", "peer-b"].map((n) => cluster.peers.find((p) => p.name === n)!) as [PeerHandle, PeerHandle];
      const ref = `${secure.host}/private/app:${authImage.tag}`;
      const { config, layers } = authImage.platforms[HOST_PLATFORM]!;
      const blobs = [config, ...layers];

      const anon = await fetch(`${peerA.proxyUrl}/v2/private/app/manifests/${authImage.tag}?ns=${secure.host}`);
      assert.equal(anon.status, 401, "the registry's 401 is passed through");
      assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic realm="kiln-test"/);
      const anonBlob = await fetch(`${peerA.proxyUrl}/v2/private/app/blobs/${layers[0]}?ns=${secure.host}`);
      assert.equal(anonBlob.status, 401, "a blob GET without credentials gets the registry's 401");
      assert.match(anonBlob.headers.get("www-authenticate") ?? "", /^Basic realm="kiln-test"/);
      await anonBlob.arrayBuffer();
      const denied = await pull("auth-anonymous", ["--hosts-dir", await hostsDir("auth-anon", peerA, false, secure.host)], ref).then(
        () => undefined,
        (err: Error & { stderr?: string }) => err.stderr ?? err.message,
      );
      assert.ok(denied !== undefined, "a pull without credentials fails");
      assert.match(denied, /401|unauthorized/i);

      // blobGets counts every GET, 401s included, and the anonymous requests above were
      // refused by the registry: count from here, so that one GET per blob means both
      // credentialed pulls together fetched it once (and made no refused attempt either).
      const gets = new Map(blobs.map((d) => [d, secure.blobGets(d)]));
      const a = await pull("auth-via-peer-a", ["--user", creds, "--hosts-dir", await hostsDir("auth-a", peerA, false, secure.host)], ref);
      await assertContent(a, authImage, ref);
      const b = await pull("auth-via-peer-b", ["--user", creds, "--hosts-dir", await hostsDir("auth-b", peerB, true, secure.host)], ref);
      await assertContent(b, authImage, ref);
      for (const d of blobs) assert.equal(secure.blobGets(d) - gets.get(d)!, 1, `registry GETs of ${d} for the two pulls`);
      // The credentials never show up in kiln's logs.
      const secret = Buffer.from(creds).toString("base64");
      for (const p of [...cluster.peers, { name: "scheduler", proc: cluster.scheduler }]) {
        const logs = [...p.proc.lines, ...p.proc.stderr].join("\n");
        assert.ok(!logs.includes(secret) && !logs.includes(REGISTRY_PASSWORD), `${p.name} logged the credentials`);
      }
      // Nor in what the peers keep on disk besides content.
      for (const p of cluster.peers) {
        for (const f of await readdir(p.dataDir, { recursive: true, withFileTypes: true })) {
          if (!f.isFile() || f.name === "content") continue;
          const text = await readFile(join(f.parentPath ?? f.path, f.name), "latin1");
          assert.ok(!text.includes(secret) && !text.includes(REGISTRY_PASSWORD), `${p.name} stored the credentials in ${f.name}`);
        }
      }
    } finally {
      await Promise.all([secure.stop(), authImage.cleanup()]);
    }
  });

  it("a registry the peer may not reach: containerd, sent to the peer by _default, falls back to the registry; the peer counts the refusals and names the registry once at warn level", {
    skip,
  }, async () => {
    // 127.0.0.2 is loopback too, but not on the peers' --proxy-allow-host 127.0.0.1.
    const outside = await startRegistry("none", { address: "127.0.0.2" });
    const img = await buildOciImage({ platforms: [HOST_PLATFORM], layers: 2, layerBytes: 64 * 1024 });
    try {
      await pushImage(img, outside, "test/app");
      const peer = cluster.peers.find((p) => p.name === "peer-b")!;
      const refused = async () => {
        const text = await (await fetch(peer.metricsUrl)).text();
        return Number(/^kiln_peer_proxy_refused_total\{way="mirror",cause="host"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      };
      const before = await refused();
      const ref = `${outside.host}/test/app:${img.tag}`;
      const c = await pull("not-allowed", ["--hosts-dir", await hostsDir("not-allowed", peer, true)], ref);
      await assertContent(c, img, ref);
      const host = img.platforms[HOST_PLATFORM]!;
      for (const d of [host.config, ...host.layers]) assert.equal(outside.blobGets(d), 1, `${d} came from the registry itself`);
      const counted = (await refused()) - before;
      assert.ok(counted >= 2, `every refused mirror request counted (${counted})`);
      const warned = peer.proc.lines.filter((l) => l.includes('"level":40') && l.includes("registry mirror requests refused") && l.includes(outside.host));
      assert.equal(warned.length, 1, `one warn line names ${outside.host} for ${counted} refusals:\n${warned.join("\n")}`);
      assert.match(warned[0]!, /--proxy-allow-host/);
    } finally {
      await outside.stop();
      await img.cleanup();
    }
  });

  it("for comparison, containerd pulls the same image straight from the registry", { skip }, async () => {
    const direct = await pull("direct", []);
    await assertContent(direct);
    const host = image.platforms[HOST_PLATFORM]!;
    for (const d of [host.config, ...host.layers]) assert.equal(reg.blobGets(d), 2, `registry GETs of ${d} after the direct pull`);
  });
});
