/**
 * Content that needed credentials stays with those the origin would serve, and
 * pieces stay inside the cluster:
 *
 * - upload ports answer /pieces and /tasks only with the cluster's upload credential
 *   (a raw curl without it gets 401), while piece transfer between peers goes on;
 * - a private registry's blobs (docker-registry behind htpasswd) are served through a
 *   peer's mirror only to clients the registry itself serves: skopeo and ctr with
 *   credentials pull through two peers, without (or with wrong ones) they get the
 *   registry's 401 for the manifest and every blob, through any peer, under any
 *   repository name, and with `ns=` naming another registry.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { UPLOAD_CREDENTIAL_HEADER } from "../../src/api/peer.js";
import { TestCluster, metric, type PeerHandle } from "../helpers/cluster.js";
import { Containerd } from "../helpers/containerd.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { runKiln } from "../helpers/proc.js";
import { buildOciImage, pushImage, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { REGISTRY_PASSWORD, REGISTRY_USER } from "../helpers/registry-fixtures.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const PLATFORM = `linux/${process.arch === "x64" ? "amd64" : process.arch}`;
const CREDS = `${REGISTRY_USER}:${REGISTRY_PASSWORD}`;
const BASIC = `Basic ${Buffer.from(CREDS).toString("base64")}`;
const WRONG = `Basic ${Buffer.from(`${REGISTRY_USER}:not-the-password`).toString("base64")}`;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A raw `curl` of `url`: status and body. */
async function curl(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  const args = ["-s", "-o", "-", "-w", "\n%{http_code}", ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
  const { stdout } = await run("curl", args, { encoding: "buffer", maxBuffer: 64 * MiB });
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.subarray(cut + 1).toString()), body: stdout.subarray(0, cut) };
}

describe("upload ports serve members of their cluster only", async () => {
  const skip = await prerequisitesMissing("upload port membership test", { curl: "curl" });
  const SECRET = "upload-membership-secret-0123456789";
  const file = makeFile(6 * MiB);
  let origin: TestOrigin;
  let dir: string;
  const clusters: TestCluster[] = [];

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-members-"));
    origin = await startOrigin();
    origin.add("/members.bin", file);
  });

  after(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
    await origin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Seed + peer; the peer downloads the file through the seed. Returns them and the task ID. */
  const swarm = async (clusterSecret?: string): Promise<{ cluster: TestCluster; seed: PeerHandle; peer: PeerHandle; taskId: string }> => {
    const cluster = await TestCluster.start(clusterSecret ? { clusterSecret } : {});
    clusters.push(cluster);
    const seed = await cluster.addPeer("seed", { seed: true });
    const peer = await cluster.addPeer("peer");
    const before = origin.requests.length;
    const got = await cluster.get(peer, `${origin.url}/members.bin`, join(dir, `members-${clusters.length}.bin`));
    assert.equal(got.code, 0, got.stderr);
    assert.equal(origin.requests.length - before, 1, "the seed fetched the file from the origin once");
    assert.ok(
      (await metric(peer.metricsUrl, "kiln_peer_download_bytes_total", { source: "p2p" })) >= file.data.length,
      "the peer got every piece from the seed",
    );
    return { cluster, seed, peer, taskId: /task ([0-9a-f]{64})/.exec(got.stderr)![1]! };
  };

  it("with a cluster secret: pieces move between peers, and a raw curl without the credential (or a wrong one) gets 401", { skip }, async () => {
    const { cluster, seed, peer, taskId } = await swarm(SECRET);
    for (const p of [seed, peer]) {
      const base = `http://127.0.0.1:${p.uploadPort}`;
      for (const path of [`/tasks/${taskId}`, `/pieces/${taskId}/0`, `/pieces/${taskId}/1`]) {
        const strangers: Record<string, string>[] = [{}, { [UPLOAD_CREDENTIAL_HEADER]: "x".repeat(43) }, { [UPLOAD_CREDENTIAL_HEADER]: SECRET }];
        for (const headers of strangers) {
          const r = await curl(base + path, headers);
          assert.equal(r.status, 401, `${p.name} ${path} with ${JSON.stringify(headers)}`);
          assert.match(r.body.toString(), /serves members of its cluster only/);
        }
      }
      const whole = await curl(`${base}/tasks/${taskId}`, cluster.uploadHeaders());
      assert.equal(whole.status, 200, `${p.name}: a member reads the task`);
      assert.equal(sha256(whole.body), file.sha256);
      assert.equal((await curl(`${base}/pieces/${taskId}/0`, cluster.uploadHeaders())).status, 200);
      assert.equal((await curl(`${base}/healthy`)).status, 200, "health checks stay open");
    }
  });

  it("without a cluster secret: the scheduler's own credential still keeps strangers out", { skip }, async () => {
    const { seed, peer, taskId } = await swarm();
    for (const p of [seed, peer]) {
      for (const path of [`/tasks/${taskId}`, `/pieces/${taskId}/0`]) {
        assert.equal((await curl(`http://127.0.0.1:${p.uploadPort}${path}`)).status, 401, `${p.name} ${path}`);
      }
    }
  });
});

describe("a private registry's blobs through the mirror", async () => {
  const root = process.getuid?.() === 0 ? [] : ["containerd needs root"];
  const skip = await prerequisitesMissing(
    "private registry mirror test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", containerd: "containerd", ctr: "containerd", curl: "curl" },
    root,
  );
  let dir: string;
  /** htpasswd: team/secret and team/other; and a registry anyone may read, with its own image. */
  let secure: TestRegistry;
  let open: TestRegistry;
  let secret: BuiltImage;
  let other: BuiltImage;
  let pub: BuiltImage;
  let cluster: TestCluster;
  let seed: PeerHandle;
  let peerA: PeerHandle;
  let peerB: PeerHandle;
  /** Never pulls anything: whatever it serves comes from the other peers. */
  let peerC: PeerHandle;
  /** A registries.conf mirror of the private registry (`--registry`), for skopeo. */
  let peerM: PeerHandle;
  const containerds: Containerd[] = [];
  const blobsOf = (img: BuiltImage) => [img.platforms[PLATFORM]!.config, ...img.platforms[PLATFORM]!.layers];

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-private-"));
    const build = () => buildOciImage({ platforms: [PLATFORM], layers: 2, layerBytes: MiB });
    [secret, other, pub] = await Promise.all([build(), build(), build()]);
    [secure, open] = await Promise.all([startRegistry("basic"), startRegistry("none")]);
    await Promise.all([pushImage(secret, secure, "team/secret"), pushImage(other, secure, "team/other"), pushImage(pub, open, "library/public")]);
    cluster = await TestCluster.start({ clusterSecret: "private-registry-cluster-secret-0123", peerArgs: ["--proxy-allow-host", "127.0.0.1"] });
    seed = await cluster.addPeer("seed", { seed: true });
    [peerA, peerB, peerC] = await Promise.all([cluster.addPeer("peer-a"), cluster.addPeer("peer-b"), cluster.addPeer("peer-c")]);
    peerM = await cluster.addPeer("peer-m", { args: ["--registry", secure.url] });
  });

  after(async () => {
    await Promise.all(containerds.map((c) => c.stop()));
    await cluster?.stop();
    await Promise.all([secure?.stop(), open?.stop(), secret?.cleanup(), other?.cleanup(), pub?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** `ctr images pull` of `ref` through `peer` (hosts.toml for the registry), in a fresh containerd. */
  const ctrPull = async (name: string, peer: PeerHandle, registry: TestRegistry, ref: string, user?: string): Promise<void> => {
    const hosts = join(dir, `hosts-${name}`);
    const r = await runKiln(["config", "containerd", "--peer", peer.proxyUrl, "--registry", registry.host]);
    assert.equal(r.code, 0, r.stderr);
    await mkdir(join(hosts, registry.host), { recursive: true });
    await writeFile(join(hosts, registry.host, "hosts.toml"), r.stdout);
    const c = new Containerd(join(dir, `containerd-${name}`));
    containerds.push(c);
    await c.start();
    try {
      await c.ctr(["images", "pull", "--snapshotter", "native", "--plain-http", "--hosts-dir", hosts, ...(user ? ["--user", user] : []), ref]);
      for (const d of blobsOf(ref.includes("/team/secret:") ? secret : pub)) {
        const hex = d.slice(7);
        assert.equal(sha256(await readFile(join(c.contentDir, hex))), hex, `${name}: ${d} in containerd's content store`);
      }
    } finally {
      await c.stop();
    }
  };

  /** A registry mirror GET (or HEAD) through `peer`. */
  const viaMirror = async (peer: PeerHandle, path: string, headers: Record<string, string>, method = "GET") => {
    const r = await fetch(`${peer.proxyUrl}${path}`, { method, headers });
    const body = Buffer.from(await r.arrayBuffer());
    return { status: r.status, body, challenge: r.headers.get("www-authenticate") ?? "", taskId: r.headers.get("x-dragonfly-task-id") };
  };
  const blobHeads = (reg: TestRegistry, repository: string) => reg.requests().filter((q) => q.startsWith(`HEAD /v2/${repository}/blobs/`)).length;
  const proxied = () => Promise.all(cluster.peers.map((p) => metric(p.metricsUrl, "kiln_peer_proxy_bytes_total"))).then((v) => v.reduce((a, b) => a + b, 0));

  it("ctr with credentials pulls team/secret through two peers (the registry serves each blob once); without, or with wrong ones, it gets 401", {
    skip,
  }, async () => {
    const ref = `${secure.host}/team/secret:${secret.tag}`;
    await ctrPull("secret-a", peerA, secure, ref, CREDS);
    const heads = blobHeads(secure, "team/secret");
    await ctrPull("secret-b", peerB, secure, ref, CREDS);
    for (const d of blobsOf(secret)) assert.equal(secure.blobsServed(d), 1, `registry GETs of ${d} it answered with the blob`);
    // The check of peer B's client: one HEAD for the image, whatever its number of blobs.
    assert.equal(blobHeads(secure, "team/secret") - heads, 1, "one access check per image pull");
    const served = await proxied();
    for (const [name, user] of [
      ["anonymous", undefined],
      ["wrong", `${REGISTRY_USER}:not-the-password`],
    ] as const) {
      const failed = await ctrPull(`secret-${name}`, peerC, secure, ref, user).then(
        () => undefined,
        (err: Error & { stderr?: string }) => err.stderr ?? err.message,
      );
      assert.match(failed ?? "pulled", /401|unauthorized/i, `ctr ${name}`);
    }
    assert.equal(await proxied(), served, "no blob byte went to the refused pulls");
  });

  it("skopeo with credentials copies it through a registries.conf mirror; without, it fails and no peer sends a blob byte", { skip }, async () => {
    const conf = await runKiln(["config", "podman", "--peer", peerM.proxyUrl, "--registry", secure.host, "--insecure"]);
    assert.equal(conf.code, 0, conf.stderr);
    const confFile = join(dir, "registries.conf");
    await writeFile(confFile, conf.stdout);
    const copy = (out: string, creds: string[]) =>
      run(
        "skopeo",
        [
          "--registries-conf",
          confFile,
          "--insecure-policy",
          "copy",
          "--src-tls-verify=false",
          ...creds,
          `docker://${secure.host}/team/secret:${secret.tag}`,
          `oci:${join(dir, out)}:v1`,
        ],
        { timeout: 120_000 },
      );
    // containers/image looks credentials up by the host it talks to: the mirror's too (as `podman login <peer>` stores them).
    const authFile = join(dir, "auth.json");
    const auth = { auth: Buffer.from(CREDS).toString("base64") };
    await writeFile(authFile, JSON.stringify({ auths: { [new URL(peerM.proxyUrl).host]: auth, [secure.host]: auth } }));
    await copy("skopeo-creds", ["--src-authfile", authFile]);
    for (const d of blobsOf(secret)) {
      assert.equal(sha256(await readFile(join(dir, "skopeo-creds", "blobs", "sha256", d.slice(7)))), d.slice(7), `skopeo wrote ${d}`);
    }
    for (const d of blobsOf(secret)) assert.equal(secure.blobsServed(d), 1, `${d}: the registry served it to the cluster once, the mirror to skopeo`);
    const served = await proxied();
    const failed = await copy("skopeo-anonymous", ["--src-authfile", join(dir, "no-auth.json")]).then(
      () => undefined,
      (err: Error & { stderr?: string }) => err.stderr ?? err.message,
    );
    assert.match(failed ?? "copied", /401|unauthorized|authentication required/i);
    assert.equal(await proxied(), served, "no blob byte went to skopeo without credentials");
  });

  it("no peer serves a blob of it to a client the registry refuses: HEAD or GET, another repository, or ns= naming another registry", { skip }, async () => {
    const layers = blobsOf(secret);
    const named = { "x-dragonfly-registry": secure.url };
    const served = await proxied();
    let allowed = 0;
    for (const peer of [peerA, peerB, peerC]) {
      for (const d of layers) {
        const path = `/v2/team/secret/blobs/${d}`;
        for (const [who, auth] of [
          ["no credentials", {}],
          ["wrong credentials", { authorization: WRONG }],
        ] as const) {
          for (const method of ["GET", "HEAD"]) {
            const r = await viaMirror(peer, path, { ...named, ...auth }, method);
            assert.equal(r.status, 401, `${peer.name} ${method} ${d} with ${who}`);
            assert.match(r.challenge, /^Basic realm="kiln-test"/, "the registry's own challenge");
          }
          const ns = await viaMirror(peer, `${path}?ns=${secure.host}`, auth);
          assert.equal(ns.status, 401, `${peer.name} ${d} with ${who}, ns=`);
        }
        // The same digest under another repository, which the credentials may read but which does not hold it.
        const elsewhere = await viaMirror(peer, `/v2/team/other/blobs/${d}`, { ...named, authorization: BASIC });
        assert.equal(elsewhere.status, 404, `${peer.name} ${d} under team/other`);
        // Another registry named by ns= (or the header): what that registry says, never this one's content.
        const otherRegistry = await viaMirror(peer, `/v2/library/public/blobs/${d}?ns=${open.host}`, {});
        assert.equal(otherRegistry.status, 404, `${peer.name} ${d} at ${open.host}`);
        const headerNamed = await viaMirror(peer, `/v2/team/secret/blobs/${d}`, { "x-dragonfly-registry": open.url, authorization: BASIC });
        assert.equal(headerNamed.status, 404, `${peer.name} ${d} with X-Dragonfly-Registry ${open.host}`);
        // With credentials the registry accepts: the content, from the swarm.
        const ok = await viaMirror(peer, path, { ...named, authorization: BASIC });
        assert.equal(ok.status, 200, `${peer.name} ${d} with credentials`);
        assert.equal(ok.taskId, d.slice(7), "served by the peer");
        assert.equal(sha256(ok.body), d.slice(7));
        allowed += ok.body.length;
      }
    }
    assert.equal((await proxied()) - served, allowed, "the peers sent blob bytes to the accepted client only");
    for (const d of layers) assert.equal(secure.blobsServed(d), 1, `${d}: the registry served it to the cluster once`);
    // And nobody outside the cluster reads it off an upload port.
    for (const p of [seed, peerA]) {
      const r = await curl(`http://127.0.0.1:${p.uploadPort}/tasks/${layers[1]!.slice(7)}`);
      assert.equal(r.status, 401, `${p.name} upload port`);
    }
  });

  it("a public image's warm pull asks the registry nothing about its blobs", { skip }, async () => {
    const ref = `${open.host}/library/public:${pub.tag}`;
    await ctrPull("public-a", peerA, open, ref);
    const before = open.requests().length;
    await ctrPull("public-b", peerB, open, ref);
    const during = open.requests().slice(before);
    assert.deepEqual(
      during.filter((q) => q.includes("/blobs/")),
      [],
      "no blob request reached the registry",
    );
  });
});
