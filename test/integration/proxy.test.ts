/**
 * The peer's port :4001 as an HTTP(S) forward proxy, with real clients: skopeo
 * copies a multi-arch image through HTTP_PROXY and HTTPS_PROXY (tunnelled, then
 * intercepted with kiln's CA), Podman pulls through a registries.conf mirror,
 * and a registry that redirects blobs to signed storage URLs still makes one task
 * per blob. Debian's docker-registry is the origin, on this machine's
 * non-loopback address: Go clients never use a proxy for loopback targets.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { defaultAdvertiseIp } from "../../src/common/net.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { runKiln } from "../helpers/proc.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { buildOciImage, pushImage, selfSignedCert, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const IP = defaultAdvertiseIp();
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function missingPrerequisites(): Promise<string | undefined> {
  const problems: string[] = [];
  if (IP === "127.0.0.1") problems.push("no non-loopback IPv4 address (Go clients bypass proxies for loopback)");
  if (process.getuid?.() !== 0) problems.push("podman storage here needs root");
  return prerequisitesMissing(
    "proxy test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", podman: "podman", openssl: "openssl", dockerd: "docker.io" },
    problems,
  );
}

/** A client environment with no proxy settings but the ones given. */
function proxyEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy"]) delete env[k];
  return { ...env, ...vars };
}

/** Every blob of every platform of `image`. */
function allBlobs(image: BuiltImage): string[] {
  return Object.values(image.platforms).flatMap((p) => [p.config, ...p.layers]);
}

/** Checks that every blob in an OCI layout skopeo wrote has the content its digest names. */
async function assertLayoutHolds(layout: string, digests: string[]): Promise<void> {
  for (const d of digests) {
    const hex = d.slice("sha256:".length);
    assert.equal(sha256(await readFile(join(layout, "blobs", "sha256", hex))), hex, `${d} in ${layout}`);
  }
}

/** One raw request to the proxy from this machine's non-loopback address (not a local client). */
function fromNetwork(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; json(): { message: string } }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: IP, port, localAddress: IP, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body.toString()) as { message: string } });
      });
      res.on("error", reject);
    });
    req.on("error", reject).end();
  });
}

/** A raw CONNECT from the network; resolves with the proxy's status line and body. */
function connectFromNetwork(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: IP, port, localAddress: IP }, () => sock.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`));
    let data = "";
    sock.setEncoding("utf8").on("data", (d: string) => {
      data += d;
      const end = data.indexOf("\r\n\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      const length = Number(/content-length: (\d+)/i.exec(data)?.[1] ?? 0);
      if (end >= 0 && (status === 200 || data.length >= end + 4 + length)) {
        sock.destroy();
        resolve({ status, body: data.slice(end + 4) });
      }
    });
    sock.on("error", reject);
  });
}

describe("the peer as an HTTP(S) proxy and Podman mirror", async () => {
  const skip = await missingPrerequisites();
  let dir: string;
  let image: BuiltImage;
  /** Served by the TLS registry only, so that its blobs are new to the swarm. */
  let tlsImage: BuiltImage;
  let plain: TestRegistry;
  let secure: TestRegistry;
  let tlsCert: { cert: string; key: string };
  let origin: TestOrigin;
  let cluster: TestCluster;
  let caDir: string;
  /** Intercepting peers (shared CA). */
  let peerA: PeerHandle;
  let peerB: PeerHandle;
  /** Tunnels CONNECT as is; allows only the registries' address. */
  let peerC: PeerHandle;

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-proxy-"));
    [image, tlsImage] = await Promise.all([
      buildOciImage({ platforms: ["linux/amd64", "linux/arm64"], layers: 3, layerBytes: 2 * MiB }),
      buildOciImage({ platforms: ["linux/amd64", "linux/arm64"], layers: 2, layerBytes: 2 * MiB }),
    ]);
    tlsCert = await selfSignedCert(join(dir, "tls"), IP);
    [plain, secure, origin] = await Promise.all([startRegistry("none", { address: IP }), startRegistry("none", { address: IP, tls: tlsCert }), startOrigin()]);
    await pushImage(image, plain, "test/app");
    await pushImage(image, plain, "test/secret");
    await pushImage(tlsImage, secure, "test/app");
    caDir = join(dir, "kiln-ca");
    // Every kiln process that may reach the TLS registry trusts its certificate.
    cluster = await TestCluster.start({ peerEnv: { NODE_EXTRA_CA_CERTS: tlsCert.cert } });
    await cluster.addPeer("seed", { seed: true });
    // IP alone: plain HTTP to any port of it; CONNECT needs the TLS registry's port named.
    const allow = ["--host", "0.0.0.0", "--proxy-allow-host", IP, "--proxy-allow-host", secure.host, "--proxy-allow-host", `127.0.0.1:${origin.port}`];
    const intercept = [...allow, "--proxy-intercept", IP, "--ca-dir", caDir];
    peerA = await cluster.addPeer("peer-a", { args: intercept });
    peerB = await cluster.addPeer("peer-b", { args: intercept });
    peerC = await cluster.addPeer("peer-c", { args: ["--host", "0.0.0.0", "--proxy-allow-host", IP, "--proxy-allow-host", secure.host] });
  });

  after(async () => {
    await cluster?.stop();
    await Promise.all([plain?.stop(), secure?.stop(), origin?.close(), image?.cleanup(), tlsImage?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const skopeoCopy = (src: string, out: string, env: Record<string, string>, extra: string[] = []) =>
    run("skopeo", ["--insecure-policy", "copy", "--all", ...extra, src, `oci:${out}:v1`], { env: proxyEnv(env), timeout: 120_000 });

  it("skopeo copies a multi-arch image through HTTP_PROXY via two peers; the registry serves each blob once", { skip }, async () => {
    for (const p of [peerA, peerB]) {
      const out = join(dir, `http-${p.name}`);
      await skopeoCopy(`docker://${plain.host}/test/app:v1`, out, { HTTP_PROXY: p.proxyUrl }, ["--src-tls-verify=false"]);
      await assertLayoutHolds(out, allBlobs(image));
    }
    for (const d of allBlobs(image)) assert.equal(plain.blobGets(d), 1, `registry GETs of ${d}`);
    // Manifests and tag resolution were forwarded each time, not served from a cache.
    const manifestGets = plain.requests().filter((r) => r.startsWith("GET /v2/test/app/manifests/v1")).length;
    assert.equal(manifestGets, 2, "one tag resolution per copy");
    const layer = image.platforms["linux/arm64"]!.layers[2]!.slice(7);
    for (const p of [peerA, peerB])
      assert.ok(
        p.proc.lines.some((l) => l.includes(layer)),
        `${p.name} served the layer through P2P`,
      );
  });

  it("skopeo through HTTPS_PROXY: a CONNECT to an allowed host is tunnelled as is when not intercepted", { skip }, async () => {
    const certs = join(dir, "certs-registry");
    await mkdir(certs, { recursive: true });
    await copyFile(tlsCert.cert, join(certs, "registry-ca.crt"));
    const out = join(dir, "https-tunnel");
    await skopeoCopy(`docker://${secure.host}/test/app:v1`, out, { HTTPS_PROXY: peerC.proxyUrl }, ["--src-cert-dir", certs]);
    await assertLayoutHolds(out, allBlobs(tlsImage));
    for (const d of allBlobs(tlsImage)) assert.equal(secure.blobGets(d), 1, `the registry served ${d} itself`);
    assert.ok(!peerC.proc.lines.some((l) => l.includes(allBlobs(tlsImage)[0]!.slice(7))), "the tunnelling peer never saw a blob");
  });

  it("with --proxy-intercept, HTTPS blobs go through P2P: skopeo trusts kiln's CA (kiln ca export), two peers, one more registry GET per blob", {
    skip,
  }, async () => {
    const exported = await runKiln(["ca", "export", "--ca-dir", caDir]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    assert.equal(exported.stdout, await readFile(join(caDir, "ca.crt"), "utf8"), "the CA the peers use");
    const { stdout: mode } = await run("stat", ["-c", "%a", join(caDir, "ca.key")]);
    assert.equal(mode.trim(), "600", "the CA key is private");

    // Without trusting kiln's CA the client refuses the intercepted connection: interception is never silent.
    const untrusted = await skopeoCopy(`docker://${secure.host}/test/app:v1`, join(dir, "https-untrusted"), { HTTPS_PROXY: peerA.proxyUrl }).then(
      () => "",
      (err: Error & { stderr?: string }) => err.stderr ?? err.message,
    );
    assert.match(untrusted, /x509|certificate/i, "skopeo rejects a certificate it does not trust");

    const certs = join(dir, "certs-kiln");
    await mkdir(certs, { recursive: true });
    await writeFile(join(certs, "kiln-ca.crt"), exported.stdout);
    for (const p of [peerA, peerB]) {
      const out = join(dir, `https-${p.name}`);
      await skopeoCopy(`docker://${secure.host}/test/app:v1`, out, { HTTPS_PROXY: p.proxyUrl }, ["--src-cert-dir", certs]);
      await assertLayoutHolds(out, allBlobs(tlsImage));
    }
    for (const d of allBlobs(tlsImage)) assert.equal(secure.blobGets(d), 2, `registry GETs of ${d}: the tunnelled copy, then one for both intercepted copies`);
  });

  it("is not an open proxy: hosts off the list, CONNECTs to them and refused URLs get a clear 403, and nothing is contacted", { skip }, async () => {
    const port = Number(new URL(peerC.proxyUrl).port);
    origin.add("/private.bin", makeFile(1024));
    const before = origin.requests.length;
    const target = `${origin.url}/private.bin`;
    for (const headers of [{}, { "x-dragonfly-use-p2p": "true" }] as Record<string, string>[]) {
      const r = await fromNetwork(port, "GET", target, headers);
      assert.equal(r.status, 403, `GET ${target} ${JSON.stringify(headers)}`);
      assert.match(r.json().message, /^proxy refused GET http:\/\/127\.0\.0\.1:\d+\/private\.bin: host 127\.0\.0\.1:\d+ is not on this proxy's allowed hosts/);
    }
    const tunnel = await connectFromNetwork(port, `127.0.0.1:${origin.port}`);
    assert.equal(tunnel.status, 403);
    assert.match(JSON.parse(tunnel.body).message, /proxy refused CONNECT 127\.0\.0\.1:\d+: host 127\.0\.0\.1 is not on this proxy's allowed hosts/);
    const otherPort = await connectFromNetwork(port, plain.host);
    assert.equal(otherPort.status, 403, "CONNECT to a port of an allowed host that the list does not name");
    assert.match(JSON.parse(otherPort.body).message, /port \d+ is not allowed for CONNECT/);
    const metadata = await fromNetwork(port, "GET", "http://169.254.169.254/latest/meta-data/");
    assert.equal(metadata.status, 403);
    const mirrored = await fromNetwork(port, "GET", `/v2/x/manifests/v1?ns=127.0.0.1:${origin.port}`);
    assert.equal(mirrored.status, 403, "the mirror follows only allowed registries");
    assert.equal(origin.requests.length, before, "the origin was never contacted");

    // An allowed host through a rules file that refuses one repository.
    const rules = join(dir, "proxy-rules.yaml");
    await writeFile(
      rules,
      [
        `allowHosts: [${JSON.stringify(IP)}]`,
        "rules:",
        "  - regex: '/v2/test/secret/'",
        "    action: refuse",
        "  - regex: '/blobs/sha256:'",
        "    action: p2p",
      ].join("\n"),
    );
    const peerD = await cluster.addPeer("peer-d", { args: ["--host", "0.0.0.0", "--proxy-config", rules] });
    const dPort = Number(new URL(peerD.proxyUrl).port);
    const secret = await fromNetwork(dPort, "GET", `${plain.url}/v2/test/secret/manifests/v1`);
    assert.equal(secret.status, 403);
    assert.match(secret.json().message, /proxy rule "\/v2\/test\/secret\/" refuses this URL/);
    const copy = await skopeoCopy(`docker://${plain.host}/test/secret:v1`, join(dir, "refused"), { HTTP_PROXY: peerD.proxyUrl }, [
      "--src-tls-verify=false",
    ]).then(
      () => "",
      (err: Error & { stderr?: string }) => err.stderr ?? err.message,
    );
    assert.match(copy, /403|forbidden|denied/i, "skopeo reports the refusal");
    assert.equal(plain.requests().filter((r) => r.startsWith("GET /v2/test/secret/")).length, 0, "the registry never saw a pull of the refused repository");
    const allowed = await fromNetwork(dPort, "GET", `${plain.url}/v2/test/app/manifests/v1`, { accept: "application/vnd.oci.image.index.v1+json" });
    assert.equal(allowed.status, 200, "other repositories still pass");
  });

  it("an allowed origin that does not answer: 502 JSON naming the cause, for forwarding and for CONNECT", { skip }, async () => {
    // A port on the allowed address that nothing listens on.
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, IP, () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const rules = join(dir, "proxy-closed.yaml");
    await writeFile(rules, `allowHosts: ["${IP}:${closed}"]\n`);
    const peer = await cluster.addPeer("peer-closed", { args: ["--host", "0.0.0.0", "--proxy-config", rules] });
    const port = Number(new URL(peer.proxyUrl).port);
    // Not /v2/: while a registry fails the peer answers its ping itself (so pulls of warm images go on).
    const forwarded = await fromNetwork(port, "GET", `http://${IP}:${closed}/files/disk.img`);
    assert.equal(forwarded.status, 502);
    assert.match(forwarded.json().message, /unreachable: connection refused \(ECONNREFUSED\)/);
    const tunnelled = await connectFromNetwork(port, `${IP}:${closed}`);
    assert.equal(tunnelled.status, 502);
    assert.match(JSON.parse(tunnelled.body).message, new RegExp(`${IP.replace(/\./g, "\\.")}:${closed} unreachable: connection refused`));
    assert.equal((await fromNetwork(port, "GET", "/healthy")).status, 200, "the proxy keeps serving");
  });

  it("a registry that redirects blobs (307) to signed storage URLs: the preheat and the pulls share one task, storage is read once", { skip }, async () => {
    const file = makeFile(3 * MiB + 17);
    const blobPath = `/v2/r/app/blobs/sha256:${file.sha256}`;
    origin.redirect(blobPath, `/storage/${file.sha256}`);
    origin.add(`/storage/${file.sha256}`, file);
    const storageGets = () => origin.requests.filter((r) => r.path === `/storage/${file.sha256}`).length;
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    const preheat = await scheduler.preheat({ download: { url: `${origin.url}${blobPath}` } });
    assert.equal(preheat.taskId, file.sha256, "a blob URL's task is its digest");
    assert.ok(
      preheat.hosts.some((h) => h.accepted),
      JSON.stringify(preheat.hosts),
    );
    const deadline = Date.now() + 20_000;
    while (!(await scheduler.taskStatus(preheat.taskId)).peers.some((p) => p.isSeed && p.state === "succeeded")) {
      assert.ok(Date.now() < deadline, "the preheat finished");
      await new Promise((r) => setTimeout(r, 100));
    }
    const viaMirror = await fetch(`${peerA.proxyUrl}${blobPath}?ns=127.0.0.1:${origin.port}`);
    const viaProxy = await fromNetwork(Number(new URL(peerB.proxyUrl).port), "GET", `${origin.url}${blobPath}`);
    assert.equal(viaMirror.status, 200);
    assert.equal(viaMirror.headers.get("x-dragonfly-task-id"), file.sha256);
    assert.equal(viaMirror.headers.get("docker-content-digest"), `sha256:${file.sha256}`);
    assert.equal(sha256(Buffer.from(await viaMirror.arrayBuffer())), file.sha256);
    assert.equal(viaProxy.status, 200);
    assert.equal(sha256(viaProxy.body), file.sha256, "the proxied body arrived whole");
    assert.equal(storageGets(), 1, "storage read once, by the preheat");
    assert.equal(origin.requests.filter((r) => r.path === blobPath).length, 1, "the registry was asked once, by the preheat");

    // A signed file URL: the default filter (Expires&Signature&ns) keeps one task whatever the signature.
    const ids = new Set<string>();
    for (const q of ["Expires=1&Signature=a", "Expires=2&Signature=b"]) {
      const r = await fetchVia(peerA, `${origin.url}/storage/${file.sha256}?${q}`);
      assert.equal(r.status, 200);
      ids.add(r.taskId);
    }
    assert.equal(ids.size, 1, `one task for both signatures: ${[...ids].join(", ")}`);
    assert.match([...ids][0]!, /^[a-f0-9]{64}$/);
    assert.notEqual([...ids][0], file.sha256, "a file URL is keyed by its URL, not by the blob digest");
    assert.equal(storageGets(), 2, "one more storage read for the file task, shared by both signatures");
  });

  it("a registry blob whose bytes do not match its digest is never served as complete, through the mirror or the proxy", { skip }, async () => {
    const wrong = makeFile(5 * MiB + 3);
    const claimed = sha256(Buffer.from("the bytes the registry should have sent"));
    const path = `/v2/r/bad/blobs/sha256:${claimed}`;
    origin.add(path, wrong);
    const attempts = [() => fetch(`${peerA.proxyUrl}${path}?ns=127.0.0.1:${origin.port}`), () => fetch(`${peerB.proxyUrl}${path}?ns=127.0.0.1:${origin.port}`)];
    for (const attempt of attempts) {
      // Bytes stream while downloading, but the last piece waits for the blob's digest check:
      // the client gets a 502 naming the mismatch, or (if the first piece already went out) a body cut short.
      const r = await attempt();
      if (r.status === 200) {
        const declared = Number(r.headers.get("content-length"));
        const got = await r.arrayBuffer().then(
          (b) => b.byteLength,
          () => -1,
        );
        assert.ok(got < declared, `a 200 body must end short of its ${declared} bytes, got ${got}`);
      } else {
        assert.equal(r.status, 502);
        assert.match(((await r.json()) as { message: string }).message, /digest .* does not match the blob digest/);
      }
    }
    const r = await fetchVia(peerA, `${origin.url}${path}`);
    assert.ok(r.status !== 200 || !r.whole, `a local download gets no complete copy either (status ${r.status})`);
    // Nothing was kept as if it were that blob: the scheduler knows no finished copy of it.
    const status = await new SchedulerClient(cluster.schedulerUrl).taskStatus(claimed).catch(() => undefined);
    assert.ok(!status?.peers.some((p) => p.state === "succeeded"), JSON.stringify(status?.peers));
  });

  it("Docker pulls through HTTP_PROXY set as `kiln config docker` prints it; blobs come from the swarm", { skip }, async () => {
    const conf = await runKiln(["config", "docker", "--peer", peerB.proxyUrl, "--content-only"]);
    assert.equal(conf.code, 0, conf.stderr);
    // The drop-in's Environment= lines, as systemd would hand them to dockerd.
    const env = Object.fromEntries([...conf.stdout.matchAll(/^Environment="([A-Z_]+)=(.*)"$/gm)].map((m) => [m[1]!, m[2]!]));
    assert.deepEqual(Object.keys(env).sort(), ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]);
    const before = Object.fromEntries(allBlobs(image).map((d) => [d, plain.blobGets(d)]));
    const root = join(dir, "dockerd");
    await mkdir(root, { recursive: true });
    const sock = `unix://${join(root, "d.sock")}`;
    const daemon = spawn(
      "dockerd",
      [
        "--data-root",
        join(root, "data"),
        "--exec-root",
        join(root, "exec"),
        "--pidfile",
        join(root, "d.pid"),
        "-H",
        sock,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=vfs",
        "--insecure-registry",
        plain.host,
      ],
      { env: proxyEnv(env), stdio: ["ignore", "pipe", "pipe"] },
    );
    const daemonLog: string[] = [];
    daemon.stdout!.on("data", (d: Buffer) => daemonLog.push(String(d)));
    daemon.stderr!.on("data", (d: Buffer) => daemonLog.push(String(d)));
    const docker = (args: string[]) => run("docker", ["--host", sock, ...args], { env: proxyEnv({}), timeout: 120_000 });
    try {
      for (let i = 0; ; i++) {
        if (
          await docker(["version"]).then(
            () => true,
            () => false,
          )
        )
          break;
        assert.ok(i < 100 && daemon.exitCode === null, `dockerd did not start: ${daemonLog.join("").slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await docker(["pull", "--quiet", `${plain.host}/test/app:v1`]);
      const { stdout } = await docker(["image", "inspect", "--format", "{{json .RepoDigests}}", `${plain.host}/test/app:v1`]);
      assert.match(stdout, new RegExp(image.digest), "Docker holds the image at the index digest");
      // Docker has every blob, yet the registry was not asked for one: they came through the peer.
      for (const d of allBlobs(image)) assert.equal(plain.blobGets(d), before[d], `no new registry GET of ${d}: the peer served it`);
    } finally {
      const exited = new Promise((r) => daemon.once("exit", r));
      daemon.kill("SIGTERM");
      await exited;
    }
  });

  it("Podman pulls through the peer as a registries.conf mirror (kiln config podman); blobs come from the swarm", { skip }, async () => {
    const peerE = await cluster.addPeer("peer-e", { args: ["--registry", plain.url] });
    const conf = await runKiln(["config", "podman", "--peer", peerE.proxyUrl, "--registry", plain.host, "--insecure"]);
    assert.equal(conf.code, 0, conf.stderr);
    assert.match(conf.stdout, /^# \/etc\/containers\/registries\.conf\.d\/kiln-/m);
    const confFile = join(dir, "registries.conf");
    await writeFile(confFile, conf.stdout);
    const before = Object.fromEntries(allBlobs(image).map((d) => [d, plain.blobGets(d)]));
    const root = join(dir, "podman");
    const podman = (args: string[]) =>
      run("podman", ["--root", join(root, "root"), "--runroot", join(root, "run"), "--storage-driver", "vfs", "--events-backend", "file", ...args], {
        env: proxyEnv({ CONTAINERS_REGISTRIES_CONF: confFile }),
        timeout: 120_000,
      });
    await podman(["pull", "--quiet", "--tls-verify=false", `${plain.host}/test/app:v1`]);
    const { stdout } = await podman(["images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"]);
    assert.match(stdout, new RegExp(`${plain.host.replace(/\./g, "\\.")}/test/app:v1 ${image.digest}`));
    for (const d of allBlobs(image)) assert.equal(plain.blobGets(d), before[d], `no new registry GET of ${d}: the mirror served it`);
    const amd64Layer = image.platforms["linux/amd64"]!.layers[0]!.slice(7);
    assert.ok(
      peerE.proc.lines.some((l) => l.includes(amd64Layer)),
      "Podman's blob requests reached the peer",
    );
  });
});

/** A local `kiln get`-style P2P download through a peer: status, task ID, and whether the body arrived whole. */
async function fetchVia(peer: PeerHandle, url: string): Promise<{ status: number; taskId: string; whole: boolean }> {
  const port = Number(new URL(peer.proxyUrl).port);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "GET", path: url, headers: { "x-dragonfly-use-p2p": "true" }, agent: false }, (res) => {
      const result = (whole: boolean) => resolve({ status: res.statusCode ?? 0, taskId: String(res.headers["x-dragonfly-task-id"] ?? ""), whole });
      res.resume();
      res.on("end", () => result(true));
      res.on("error", () => result(false));
    });
    req.on("error", reject).end();
  });
}
