/**
 * Warm images pull while their registry is down, and nothing else changes while it is up:
 *
 * - docker-registry stopped after an image is warm: ctr and skopeo pull it by tag
 *   through the peer that resolved the tag (answered stale, marked), and by digest
 *   through a peer that never saw it (manifest and blobs from the swarm);
 * - a private image (htpasswd registry) stays refused to a client without (or with
 *   wrong) credentials while its registry is down: no manifest or blob byte from a peer;
 * - a tag moved while the registry answers is never answered with the old digest; a
 *   front that fails the registry's way (503, 429, no answer, refused connection) gets
 *   the last answer, marked stale; a 404 is the registry's; `--no-stale-tags` relays the failure.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import http from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { Containerd } from "../helpers/containerd.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { runKiln } from "../helpers/proc.js";
import { buildOciImage, freePort, pushImage, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { REGISTRY_PASSWORD, REGISTRY_USER } from "../helpers/registry-fixtures.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const PLATFORM = `linux/${process.arch === "x64" ? "amd64" : process.arch}`;
const CREDS = `${REGISTRY_USER}:${REGISTRY_PASSWORD}`;
const WRONG = `Basic ${Buffer.from(`${REGISTRY_USER}:not-the-password`).toString("base64")}`;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MANIFEST_ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

/** A registry mirror request through `peer` for the registry `host` (as containerd sends it: ?ns=). */
async function viaPeer(peer: PeerHandle, path: string, host: string, opts: { method?: string; headers?: Record<string, string> } = {}) {
  const r = await fetch(`${peer.proxyUrl}${path}?ns=${host}`, { method: opts.method ?? "GET", headers: { accept: MANIFEST_ACCEPT, ...opts.headers } });
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, body };
}

/** An HTTP front for a registry that can be told to fail the ways registries fail. */
interface FaultyFront {
  host: string;
  url: string;
  mode: "pass" | "503" | "429" | "hang" | "404";
  close(): Promise<void>;
}

async function startFront(target: string): Promise<FaultyFront> {
  const port = await freePort();
  const hanging = new Set<http.ServerResponse>();
  const front: FaultyFront = {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    mode: "pass",
    close: () =>
      new Promise((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    if (front.mode === "hang") return void hanging.add(res);
    if (front.mode !== "pass") {
      const status = Number(front.mode);
      return void res.writeHead(status, { "content-type": "application/json" }).end(`{"errors":[{"code":"FRONT_${status}"}]}`);
    }
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return front;
}

describe("registry outage: warm images pull from the swarm", async () => {
  const root = process.getuid?.() === 0 ? [] : ["containerd needs root"];
  const skip = await prerequisitesMissing(
    "registry outage test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", containerd: "containerd", ctr: "containerd", runc: "runc" },
    root,
  );
  let dir: string;
  let open: TestRegistry;
  let secure: TestRegistry;
  let pub: BuiltImage;
  let secret: BuiltImage;
  let cluster: TestCluster;
  /** Resolves the tags and pulls everything while the registries answer. */
  let peerA: PeerHandle;
  /** Never pulls before the outage: what it serves comes from the swarm. */
  let peerB: PeerHandle;
  let openHost: string;
  let secureHost: string;
  const containerds: Containerd[] = [];
  const stopped = new Set<TestRegistry>();
  const stop = async (r: TestRegistry) => {
    stopped.add(r);
    await r.stop();
  };
  const blobsOf = (img: BuiltImage) => [img.platforms[PLATFORM]!.config, ...img.platforms[PLATFORM]!.layers];

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-outage-"));
    const build = () => buildOciImage({ platforms: [PLATFORM], layers: 2, layerBytes: MiB });
    [pub, secret] = await Promise.all([build(), build()]);
    [open, secure] = await Promise.all([startRegistry("none"), startRegistry("basic")]);
    openHost = open.host;
    secureHost = secure.host;
    await Promise.all([pushImage(pub, open, "library/public"), pushImage(secret, secure, "team/secret")]);
    cluster = await TestCluster.start({
      clusterSecret: "registry-outage-cluster-secret-0123456",
      // A short access-check memory, so that the registry's last yes to a client has expired when it is down.
      peerArgs: ["--proxy-allow-host", "127.0.0.1", "--registry", open.url, "--access-check-ttl-ms", "500"],
    });
    await cluster.addPeer("seed", { seed: true });
    [peerA, peerB] = await Promise.all([cluster.addPeer("peer-a"), cluster.addPeer("peer-b")]);
  });

  after(async () => {
    await Promise.all(containerds.map((c) => c.stop()));
    await cluster?.stop();
    // (A registry stopped by a test is not stopped again: its helper would wait for a second exit.)
    await Promise.all([stopped.has(open) ? undefined : open?.stop(), stopped.has(secure) ? undefined : secure?.stop(), pub?.cleanup(), secret?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** `ctr images pull` of `ref` through `peer` (hosts.toml for `host`) in a fresh containerd; the image's blobs checked in its store. */
  const ctrPull = async (name: string, peer: PeerHandle, host: string, ref: string, image: BuiltImage, user?: string): Promise<void> => {
    const hosts = join(dir, `hosts-${name}`);
    const r = await runKiln(["config", "containerd", "--peer", peer.proxyUrl, "--registry", host]);
    assert.equal(r.code, 0, r.stderr);
    await mkdir(join(hosts, host), { recursive: true });
    await writeFile(join(hosts, host, "hosts.toml"), r.stdout);
    const c = new Containerd(join(dir, `containerd-${name}`));
    containerds.push(c);
    await c.start();
    try {
      await c.ctr(["images", "pull", "--snapshotter", "native", "--plain-http", "--hosts-dir", hosts, ...(user ? ["--user", user] : []), ref]);
      for (const d of blobsOf(image)) {
        const hex = d.slice(7);
        assert.equal(sha256(await readFile(join(c.contentDir, hex))), hex, `${name}: ${d} in containerd's content store`);
      }
    } finally {
      await c.stop();
    }
  };

  /** skopeo copy from `peer`, addressed as the registry itself (its --registry is the public one). */
  const skopeoCopy = async (peer: PeerHandle, ref: string, out: string, image: BuiltImage): Promise<void> => {
    const source = `docker://${new URL(peer.proxyUrl).host}/library/public${ref}`;
    await run("skopeo", ["--insecure-policy", "copy", "--src-tls-verify=false", source, `oci:${join(dir, out)}:v1`], { timeout: 120_000 });
    for (const d of blobsOf(image)) {
      assert.equal(sha256(await readFile(join(dir, out, "blobs", "sha256", d.slice(7)))), d.slice(7), `skopeo ${out}: ${d}`);
    }
  };

  it("warms: ctr and skopeo pull the public image, ctr with credentials the private one, all through peer A", { skip }, async () => {
    await ctrPull("warm-public", peerA, openHost, `${openHost}/library/public:${pub.tag}`, pub);
    await skopeoCopy(peerA, `:${pub.tag}`, "warm-skopeo", pub);
    await ctrPull("warm-secret", peerA, secureHost, `${secureHost}/team/secret:${secret.tag}`, secret, CREDS);
    // While the registry answers, its answer is what a tag gets: nothing stale.
    const head = await viaPeer(peerA, `/v2/library/public/manifests/${pub.tag}`, openHost, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), pub.digest);
    assert.equal(head.headers.get("x-kiln-stale"), null);
    // A manifest by digest is content: served by the peer (a task of its own), the same bytes.
    const byDigest = await viaPeer(peerA, `/v2/library/public/manifests/${pub.digest}`, openHost);
    assert.equal(byDigest.status, 200);
    assert.equal(`sha256:${sha256(byDigest.body)}`, pub.digest);
    assert.ok(byDigest.headers.get("x-dragonfly-task-id"), "served from a task");
    assert.equal(byDigest.headers.get("content-type"), "application/vnd.oci.image.manifest.v1+json");
    // Another node's pull gets the manifest by digest from the swarm: the registry sent it to the cluster once.
    const manifestGets = () => open.requests().filter((q) => q.startsWith("GET ") && q.includes(`/manifests/${pub.digest}`)).length;
    const peerC = await cluster.addPeer("peer-c");
    const before = manifestGets();
    await ctrPull("warm-public-c", peerC, openHost, `${openHost}/library/public:${pub.tag}`, pub);
    assert.equal(manifestGets(), before, "peer C's manifest by digest came from the swarm");
    assert.equal(before, 1, "the registry sent the manifest by digest once");
  });

  it("the public registry stopped: ctr and skopeo pull by tag (peer A, stale) and by digest (peer B, from the swarm)", { skip }, async () => {
    await stop(open);

    const head = await viaPeer(peerA, `/v2/library/public/manifests/${pub.tag}`, openHost, { method: "HEAD" });
    assert.equal(head.status, 200, "tag answered from memory");
    assert.equal(head.headers.get("docker-content-digest"), pub.digest);
    assert.match(head.headers.get("x-kiln-stale") ?? "", /^age=\d+; reason=".*(refused|unreachable).*"$/i);
    assert.match(head.headers.get("age") ?? "", /^\d+$/);
    assert.match(head.headers.get("warning") ?? "", /^110 /);
    const get = await viaPeer(peerA, `/v2/library/public/manifests/${pub.tag}`, openHost);
    assert.equal(get.status, 200);
    assert.equal(`sha256:${sha256(get.body)}`, pub.digest, "the remembered manifest, verified");
    assert.ok(get.headers.get("x-kiln-stale"));

    await ctrPull("down-tag", peerA, openHost, `${openHost}/library/public:${pub.tag}`, pub);
    await ctrPull("down-digest", peerB, openHost, `${openHost}/library/public@${pub.digest}`, pub);
    await skopeoCopy(peerA, `:${pub.tag}`, "down-skopeo-tag", pub);
    await skopeoCopy(peerB, `@${pub.digest}`, "down-skopeo-digest", pub);
    assert.ok(
      peerA.proc.lines.some((l) => l.includes("tag answered from the last answer it gave (stale)")),
      "peer A logged its stale answers",
    );
  });

  it("the private registry stopped: no peer serves its manifest or blobs to a client without (or with wrong) credentials", { skip }, async () => {
    await stop(secure);
    // The registry's last yes to the warm pull's credentials has expired (--access-check-ttl-ms 500).
    await new Promise((r) => setTimeout(r, 600));
    const paths = [
      `/v2/team/secret/manifests/${secret.tag}`,
      `/v2/team/secret/manifests/${secret.digest}`,
      ...blobsOf(secret).map((d) => `/v2/team/secret/blobs/${d}`),
    ];
    for (const peer of [peerA, peerB]) {
      for (const path of paths) {
        for (const [who, headers] of [
          ["no credentials", {}],
          ["wrong credentials", { authorization: WRONG }],
        ] as const) {
          for (const method of ["GET", "HEAD"]) {
            const r = await viaPeer(peer, path, secureHost, { method, headers });
            assert.notEqual(r.status, 200, `${peer.name} ${method} ${path} with ${who}`);
            assert.ok(r.status >= 400, `${peer.name} ${method} ${path} with ${who}: ${r.status}`);
            assert.equal(r.headers.get("docker-content-digest"), null, `${peer.name} ${method} ${path}: no digest given away`);
          }
        }
      }
    }
    const failed = await ctrPull("secret-anonymous-down", peerA, secureHost, `${secureHost}/team/secret:${secret.tag}`, secret).then(
      () => undefined,
      (err: Error) => err.message,
    );
    assert.ok(failed, "ctr without credentials did not pull the private image");
  });
});

describe("a moving tag: the registry's answer while it answers, the last one when it fails", async () => {
  const skip = await prerequisitesMissing("moving tag test", { "docker-registry": "docker-registry", skopeo: "skopeo" });
  let registry: TestRegistry;
  let front: FaultyFront;
  let first: BuiltImage;
  let second: BuiltImage;
  let cluster: TestCluster;
  let peer: PeerHandle;
  /** Started with --no-stale-tags. */
  let strict: PeerHandle;

  before(async () => {
    if (skip) return;
    const build = () => buildOciImage({ platforms: [PLATFORM], layers: 1, layerBytes: 64 * 1024, tag: "moving" });
    [first, second] = await Promise.all([build(), build()]);
    registry = await startRegistry("none");
    front = await startFront(registry.url);
    cluster = await TestCluster.start({ peerArgs: ["--proxy-allow-host", "127.0.0.1", "--tag-timeout-ms", "1000"] });
    await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer");
    strict = await cluster.addPeer("strict", { args: ["--no-stale-tags"] });
  });

  after(async () => {
    if (process.env.DEBUG_OUTAGE) console.log(peer.proc.lines.filter((l) => /tag|registry|manifest/i.test(l)).join("\n"));
    await cluster?.stop();
    await front?.close();
    await Promise.all([registry?.stop(), first?.cleanup(), second?.cleanup()]);
  });

  const tagPath = "/v2/app/manifests/moving";
  const answer = async (p: PeerHandle, method = "GET") => {
    const r = await viaPeer(p, tagPath, front.host, { method });
    return { status: r.status, digest: r.headers.get("docker-content-digest"), stale: r.headers.get("x-kiln-stale"), body: r.body };
  };

  it("a tag moved while the registry answers is answered with its new digest, never the old one", { skip }, async () => {
    await pushImage(first, registry, "app");
    for (const p of [peer, strict]) {
      const a = await answer(p);
      assert.deepEqual([a.status, a.digest, a.stale], [200, first.digest, null], `${p.name} before the move`);
    }
    await pushImage(second, registry, "app");
    for (const method of ["GET", "HEAD"]) {
      const a = await answer(peer, method);
      assert.deepEqual([a.status, a.digest, a.stale], [200, second.digest, null], `${method} after the move`);
      if (method === "GET") assert.equal(`sha256:${sha256(a.body)}`, second.digest);
    }
    // The old manifest by digest is still content (the registry keeps it): served as such, not as the tag.
    const old = await viaPeer(peer, `/v2/app/manifests/${first.digest}`, front.host);
    assert.equal(old.status, 200);
    assert.equal(`sha256:${sha256(old.body)}`, first.digest);
    assert.deepEqual([(await answer(peer)).digest], [second.digest], "the tag still answers the new digest");
  });

  it("503, 429, no answer in time and a refused connection get the last answer, marked stale; --no-stale-tags relays the failure", { skip }, async () => {
    // The manifest the tag last answered is fetched in the background once the tag is answered; a GET
    // by digest joins that download, so the peer holds it (is warm) before the registry starts failing.
    const warm = await viaPeer(peer, `/v2/app/manifests/${second.digest}`, front.host);
    assert.equal(`sha256:${sha256(warm.body)}`, second.digest);
    for (const mode of ["503", "429", "hang"] as const) {
      front.mode = mode;
      for (const method of ["GET", "HEAD"]) {
        const a = await answer(peer, method);
        assert.equal(a.status, 200, `${mode} ${method}`);
        assert.equal(a.digest, second.digest, `${mode} ${method}: the last answer`);
        assert.match(a.stale ?? "", /^age=\d+; reason=/, `${mode} ${method}: marked stale`);
      }
      // (A peer without stale tags waits for a hanging registry as long as for any origin.)
      if (mode !== "hang") assert.equal((await answer(strict)).status, Number(mode), `--no-stale-tags, ${mode}: the registry's own answer`);
    }
    // A registry that answers 404 (the tag deleted) is answered 404, never from memory.
    front.mode = "404";
    const gone = await answer(peer);
    assert.equal(gone.status, 404);
    assert.equal(gone.stale, null);
    front.mode = "pass";
    await front.close();
    const refused = await answer(peer);
    assert.deepEqual([refused.status, refused.digest], [200, second.digest], "connection refused");
    assert.match(refused.stale ?? "", /refused|unreachable/i);
    assert.equal((await answer(strict)).status, 502, "--no-stale-tags: the failure");
  });
});
