/**
 * `kiln get` on the peer's own host makes the output from the peer's stored file
 * instead of receiving the bytes: a real scheduler, seed peer and
 * peers on loopback. By default the output is a reflink or, where the filesystem has
 * none, a hard link to the stored file (no byte copied); the peer then checks the file
 * is unchanged before serving it again, so an edited output is never served. With
 * --no-hard-link the output is the caller's own copy (owner, umask) that editing cannot
 * carry to the peer. Whenever no local copy can be made (a caller that may not read the
 * peer's data directory, a client on another address, an older peer) the bytes are
 * streamed instead; no failure leaves a file at -O.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createHash } from "node:crypto";
import { chmod, chown, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, metric, type PeerHandle } from "../helpers/cluster.js";
import { KILN_BIN, runKiln } from "../helpers/proc.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { defaultAdvertiseIp } from "../../src/common/net.js";
import { KILN_PROXY_HEADERS, LOCAL_COPY_CONTENT_TYPE, encodeLocalCopyMessage } from "../../src/api/proxy.js";

const MiB = 1024 * 1024;
const NOBODY = 65534;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Runs `kiln get` through `sh` (for its umask), optionally as another user; resolves with its exit code and stderr. */
function kilnGet(args: string[], opts: { umask?: string; asNobody?: boolean; cwd?: string } = {}): Promise<{ code: number | null; stderr: string }> {
  const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const kiln = [process.execPath, KILN_BIN, "get", ...args, "--no-progress"].map(quote).join(" ");
  const shell = `${opts.cwd ? `cd ${quote(opts.cwd)}; ` : ""}umask ${opts.umask ?? "022"}; exec ${kiln}`;
  const argv = opts.asNobody ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "sh", "-c", shell] : ["sh", "-c", shell];
  return new Promise((resolve, reject) => {
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    proc.on("error", reject);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** The stored content files under a peer's data directory. */
async function storedContents(dataDir: string): Promise<string[]> {
  const entries = await readdir(dataDir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name === "content").map((e) => join(e.parentPath ?? e.path, e.name));
}

describe("kiln get on the peer's host: a copy of the stored file, not a second stream", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  let seed: PeerHandle;
  let peer: PeerHandle;
  let outRoot: string;
  let file: OriginFile;
  let nobodyFile: OriginFile;
  const bytesServed = (p: PeerHandle) => metric(p.metricsUrl, "kiln_peer_proxy_bytes_total");
  const localCopies = (p: PeerHandle) => metric(p.metricsUrl, "kiln_peer_proxy_local_copies_total");

  before(async () => {
    origin = await startOrigin();
    file = makeFile(12 * MiB + 123);
    origin.add("/file.bin", file);
    origin.add("/other.bin", makeFile(6 * MiB));
    nobodyFile = makeFile(5 * MiB);
    origin.add("/nobody.bin", nobodyFile);
    cluster = await TestCluster.start();
    seed = await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer", { args: ["--host", "0.0.0.0", "--proxy-allow-host", "127.0.0.1"] });
    outRoot = await mkdtemp(join(tmpdir(), "kiln-get-local-"));
    await chmod(outRoot, 0o755);
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    if (outRoot) await rm(outRoot, { recursive: true, force: true });
  });

  const caseDir = () => mkdtemp(join(outRoot, "case-"));

  const LINKED = /(hard-linked to the peer's stored file|cloned from the peer's store \(a reflink\))/;

  it("by default links the finished task's file: no content bytes over the connection, no copy, exact content", async () => {
    const dir = await caseDir();
    const out = join(dir, "out.bin");
    const [served, copies] = [await bytesServed(peer), await localCopies(peer)];
    const r = await kilnGet([`${origin.url}/file.bin`, "-O", out, "--peer", peer.proxyUrl]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`saved .*out\\.bin: .*${LINKED.source}`));
    assert.equal(await bytesServed(peer), served, "the peer sent no content bytes to kiln get");
    assert.equal(await localCopies(peer), copies + 1);
    assert.equal(sha256(await readFile(out)), file.sha256);
    if (/hard-linked/.test(r.stderr)) {
      const inodes = await Promise.all((await storedContents(peer.dataDir)).map(async (p) => (await stat(p)).ino));
      assert.ok(inodes.includes((await stat(out)).ino), "the output is the peer's stored file under another name");
    }
    assert.deepEqual(await readdir(dir), ["out.bin"], "no .part left beside it");
    assert.equal(origin.sent.get("/file.bin"), file.data.length, "the origin sent the file once");
  });

  it("--no-hard-link: a copy of the caller's own (owner, umask), still no content bytes over the connection", async () => {
    const dir = await caseDir();
    const out = join(dir, "out.bin");
    const served = await bytesServed(peer);
    const r = await kilnGet([`${origin.url}/file.bin`, "-O", out, "--peer", peer.proxyUrl, "--no-hard-link"], { umask: "027" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /saved .*out\.bin: .*(copied from the peer's store|cloned from the peer's store)/);
    assert.equal(await bytesServed(peer), served);
    assert.equal(sha256(await readFile(out)), file.sha256);
    const st = await stat(out);
    assert.equal(st.uid, process.getuid!());
    assert.equal(st.mode & 0o777, 0o640, "0666 less the caller's umask 027, not the stored file's mode");
    const inodes = await Promise.all((await storedContents(peer.dataDir)).map(async (p) => (await stat(p)).ino));
    assert.ok(!inodes.includes(st.ino), "not the peer's file");
  });

  /** Writes into `out` in place, as an editor or `dd conv=notrunc` would (a hard link carries this to the peer's file). */
  async function editInPlace(out: string): Promise<void> {
    const fh = await open(out, "r+");
    await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 0);
    await fh.write(Buffer.from("appended"), 0, 8, file.data.length);
    await fh.close();
  }

  it("an edited linked output is never served: the peer drops its changed file and the next download is right", async () => {
    const dir = await caseDir();
    const out = join(dir, "out.bin");
    const r = await kilnGet([`${origin.url}/file.bin`, "-O", out, "--peer", peer.proxyUrl]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, LINKED);
    await editInPlace(out);
    const again = join(dir, "again.bin");
    const r2 = await kilnGet([`${origin.url}/file.bin`, "-O", again, "--peer", peer.proxyUrl]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha256(await readFile(again)), file.sha256, "the original content, not the edited file");
    assert.notEqual((await stat(again)).ino, (await stat(out)).ino);
    const held = await Promise.all((await storedContents(peer.dataDir)).map(async (p) => sha256(await readFile(p))));
    assert.deepEqual(held, [file.sha256], "the peer holds the original content again, and no edited copy");
    assert.equal(origin.sent.get("/file.bin"), file.data.length, "fetched again from the seed, not the origin");
  });

  it("--no-hard-link: editing the output changes neither the peer's stored file nor what a second peer downloads from it", async () => {
    const dir = await caseDir();
    const out = join(dir, "out.bin");
    const r = await kilnGet([`${origin.url}/file.bin`, "-O", out, "--peer", peer.proxyUrl, "--no-hard-link"]);
    assert.equal(r.code, 0, r.stderr);
    await editInPlace(out);
    const stored = (await Promise.all((await storedContents(peer.dataDir)).map(async (p) => sha256(await readFile(p))))).filter((h) => h === file.sha256);
    assert.equal(stored.length, 1, "the peer's stored content is unchanged");

    // Only `peer` holds the task now: a second peer must fetch it from there.
    await seed.proc.kill();
    const uploaded = await metric(peer.metricsUrl, "kiln_peer_upload_bytes_total");
    const second = await cluster.addPeer("second");
    const again = join(dir, "again.bin");
    const r2 = await kilnGet([`${origin.url}/file.bin`, "-O", again, "--peer", second.proxyUrl]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha256(await readFile(again)), file.sha256, "the second peer got the original content");
    assert.ok((await metric(peer.metricsUrl, "kiln_peer_upload_bytes_total")) - uploaded >= file.data.length, "it came from the first peer");
    assert.equal(origin.sent.get("/file.bin"), file.data.length, "and not from the origin");
  });

  it("a caller that cannot read the peer's data directory (user nobody) gets the file streamed, owned by itself", async (t) => {
    const notRoot = process.getuid?.() === 0 ? [] : ["needs root to switch to nobody"];
    const skip = await prerequisitesMissing("local copy as nobody", { setpriv: "util-linux" }, notRoot);
    if (skip) return t.skip(skip);
    const dir = await caseDir();
    await chown(dir, NOBODY, NOBODY);
    const out = join(dir, "out.bin");
    const served = await bytesServed(peer);
    const r = await kilnGet([`${origin.url}/nobody.bin`, "-O", out, "--peer", peer.proxyUrl], { asNobody: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /streamed from the peer \(no local copy: .*(EACCES|permission denied)/);
    const data = await readFile(out);
    assert.equal(sha256(data), nobodyFile.sha256);
    assert.equal((await stat(out)).uid, NOBODY);
    assert.equal((await bytesServed(peer)) - served, data.length, "the bytes went over the connection once");
    assert.deepEqual(await readdir(dir), ["out.bin"]);
  });

  it("a client on another address gets the bytes, not a path", async (t) => {
    const ip = defaultAdvertiseIp();
    if (ip === "127.0.0.1") return t.skip("no non-loopback address");
    const dir = await caseDir();
    const out = join(dir, "out.bin");
    const copies = await localCopies(peer);
    const viaNetwork = `http://${ip}:${new URL(peer.proxyUrl).port}`;
    const r = await kilnGet([`${origin.url}/other.bin`, "-O", out, "--peer", viaNetwork]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /streamed from the peer$/m);
    assert.equal(await localCopies(peer), copies);
    assert.equal((await readFile(out)).length, 6 * MiB);
  });

  it("a failure mid-download leaves nothing at -O, with or without a local copy", async () => {
    const big = makeFile(10 * MiB);
    for (const [i, extra] of [[], ["--no-local-copy"]].entries()) {
      origin.add(`/big-${i}.bin`, big);
      const dir = await caseDir();
      const r = await kilnGet([`${origin.url}/reset/big-${i}.bin`, "-O", join(dir, "out.bin"), "--peer", peer.proxyUrl, ...extra]);
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, /^kiln get: .*reset/im);
      assert.deepEqual(await readdir(dir), [], `${extra.join(" ") || "local copy"}: no file and no .part`);
    }
  });

  it("--no-local-copy streams from a peer on this host too", async () => {
    const dir = await caseDir();
    const out = join(dir, "out.bin");
    const served = await bytesServed(peer);
    const r = await kilnGet([`${origin.url}/file.bin`, "-O", out, "--peer", peer.proxyUrl, "--no-local-copy"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /streamed from the peer$/m);
    assert.equal(sha256(await readFile(out)), file.sha256);
    assert.equal((await bytesServed(peer)) - served, file.data.length);
  });

  it("an output directory that does not exist: neither the copy nor the stream can write, and the error says why", async () => {
    const dir = await caseDir();
    const r = await runKiln(["get", `${origin.url}/file.bin`, "-O", join(dir, "missing", "out.bin"), "--peer", peer.proxyUrl, "--no-progress"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^kiln get: cannot save to .*out\.bin: the directory .*missing does not exist$/m, "the message names the file asked for");
    assert.doesNotMatch(r.stderr, /\.part/, "not the temporary file");
    assert.deepEqual(await readdir(dir), []);
    assert.equal(peer.proc.proc.exitCode, null, "the peer is still running");
  });

  /** A stand-in for the peer's proxy: answers each request with `answer`, and records the requests. */
  async function standInPeer(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
    const seen: http.IncomingHttpHeaders[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers);
      answer(req, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const close = () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    };
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close };
  }

  /** What a peer that streams answers: the body, chunked, its length in x-kiln-content-length and the ok trailer. */
  function streamed(res: http.ServerResponse, body: Buffer): void {
    res.writeHead(200, { "content-type": "application/octet-stream", "x-kiln-content-length": String(body.length), trailer: "x-kiln-result" });
    res.write(body);
    res.addTrailers({ "x-kiln-result": "ok" });
    res.end();
  }

  it("without -O the file is saved under the URL's file name in the current directory, as curl -O does", async () => {
    const body = makeFile(64 * 1024).data;
    const stand = await standInPeer((_req, res) => streamed(res, body));
    try {
      const dir = await caseDir();
      const r = await kilnGet([`${origin.url}/images/disk%20one.img?sig=1`, "--peer", stand.url], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await readdir(dir), ["disk one.img"]);
      assert.ok((await readFile(join(dir, "disk one.img"))).equals(body));
      const none = await kilnGet([`${origin.url}/`, "--peer", stand.url], { cwd: dir });
      assert.equal(none.code, 1);
      assert.match(none.stderr, /^kiln get: .* names no file; give one with -O FILE$/m);
    } finally {
      await stand.close();
    }
  });

  it("a peer that accepts the connection and never answers: kiln get gives up after --request-timeout and says which peer", async () => {
    const silent = await standInPeer(() => undefined);
    try {
      const dir = await caseDir();
      const r = await kilnGet([`${origin.url}/file.bin`, "-O", join(dir, "out.bin"), "--peer", silent.url, "--request-timeout", "1s"]);
      assert.equal(r.code, 1, `kiln get ended by itself with an error: ${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`^kiln get: the kiln peer at ${silent.url.replace(/\./g, "\\.")} accepted the connection but sent no answer within 1 s`, "m"),
      );
      assert.deepEqual(await readdir(dir), [], "nothing left behind");
    } finally {
      await silent.close();
    }
  });

  it("a peer whose answer breaks off mid-download (it died): kiln get says the connection to the peer broke, nothing left behind", async () => {
    const dying = await standInPeer((_req, res) => {
      res.writeHead(200, { "content-type": LOCAL_COPY_CONTENT_TYPE, [KILN_PROXY_HEADERS.contentLength]: String(8 * MiB) });
      res.write(encodeLocalCopyMessage({ type: "progress", bytes: MiB }));
      setTimeout(() => res.socket?.destroy(), 100);
    });
    try {
      const dir = await caseDir();
      const r = await kilnGet([`${origin.url}/file.bin`, "-O", join(dir, "out.bin"), "--peer", dying.url]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^kiln get: download failed: the connection to the peer broke before the download finished/m);
      assert.deepEqual(await readdir(dir), [], "nothing left behind");
    } finally {
      await dying.close();
    }
  });

  it("an older peer that ignores the local-copy request: its stream is saved", async () => {
    const body = makeFile(256 * 1024).data;
    const old = await standInPeer((_req, res) => streamed(res, body));
    try {
      const out = join(await caseDir(), "out.bin");
      const r = await kilnGet([`${origin.url}/any.bin`, "-O", out, "--peer", old.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /streamed from the peer$/m);
      assert.ok((await readFile(out)).equals(body));
      assert.equal(old.seen.length, 1, "one request");
      assert.equal(old.seen[0]!["x-kiln-local-copy"], "1", "which asked for a local copy");
    } finally {
      await old.close();
    }
  });

  it("a path that names another file here (another mount namespace) is not copied: the content is streamed instead", async () => {
    const dir = await caseDir();
    const decoy = join(dir, "decoy");
    await writeFile(decoy, "not the peer's content");
    const size = (await stat(decoy)).size;
    const body = makeFile(256 * 1024).data;
    const peerElsewhere = await standInPeer((req, res) => {
      if (req.headers["x-kiln-local-copy"] !== "1") return streamed(res, body);
      res.writeHead(200, { "content-type": "application/vnd.kiln.local-copy.v1+jsonl" });
      res.write(`${JSON.stringify({ type: "ready", path: decoy, size, dev: "1", ino: "1" })}\n`);
    });
    try {
      const out = join(dir, "out.bin");
      const r = await kilnGet([`${origin.url}/any.bin`, "-O", out, "--peer", peerElsewhere.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /streamed from the peer \(no local copy: .*decoy here is not the peer's file\)/);
      assert.ok((await readFile(out)).equals(body), "the streamed content, not the decoy");
      assert.deepEqual(
        peerElsewhere.seen.map((h) => h["x-kiln-local-copy"]),
        ["1", undefined],
        "asked for a local copy, then for the stream",
      );
      assert.deepEqual((await readdir(dir)).sort(), ["decoy", "out.bin"]);
    } finally {
      await peerElsewhere.close();
    }
  });
});
