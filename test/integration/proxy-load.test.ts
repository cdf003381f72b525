/**
 * The peer proxy under a load of concurrent clients, some of which hang up
 * mid-stream: every complete answer is right, the
 * origin sends each file once, and afterwards the peer holds no more file
 * descriptors than before: no client connection, no stored file left open.
 * Real scheduler, seed peer and peer on loopback.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { realpath } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { fdCensus, type FdCensus } from "../helpers/fds.js";

const MiB = 1024 * 1024;
/** Long enough for the clients below to join the download while it runs. */
const ORIGIN_RATE = 8 * MiB;
/** The longest the descriptors may take to fall back once every client is gone (closing is asynchronous). */
const SETTLE_LIMIT_MS = 20_000;
/** How long a client that stopped reading waits before it hangs up. */
const HANG_UP_AFTER_PAUSE_MS = 500;

type Behaviour =
  | { kind: "read-all" }
  /** Stops reading after `bytes`, then hangs up. */
  | { kind: "hang-up-after"; bytes: number }
  /** Hangs up soon after sending the request, before the peer has a verified byte to answer with. */
  | { kind: "hang-up-before-answer" }
  /** Asks for a local copy (the peer's host) and hangs up at the first progress message. */
  | { kind: "local-copy-hang-up" };

interface Outcome {
  status: number;
  complete: boolean;
  sha256: string;
}

function client(peer: PeerHandle, url: string, behaviour: Behaviour): Promise<Outcome> {
  const proxy = new URL(peer.proxyUrl);
  const headers: Record<string, string> = { "x-dragonfly-use-p2p": "true" };
  if (behaviour.kind === "local-copy-hang-up") headers["x-kiln-local-copy"] = "1";
  return new Promise((resolve) => {
    const hash = createHash("sha256");
    let status = 0;
    let received = 0;
    let settled = false;
    const done = (complete: boolean) => {
      if (settled) return;
      settled = true;
      resolve({ status, complete, sha256: hash.digest("hex") });
    };
    const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers, agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (chunk: Buffer) => {
        received += chunk.length;
        hash.update(chunk);
        if (behaviour.kind === "local-copy-hang-up") {
          done(false);
          req.destroy();
        } else if (behaviour.kind === "hang-up-after" && received >= behaviour.bytes && !res.isPaused()) {
          // Stops reading first, so the socket buffers fill and the peer is caught mid-file, then hangs up.
          res.pause();
          setTimeout(() => {
            done(false);
            req.destroy();
          }, HANG_UP_AFTER_PAUSE_MS);
        }
      });
      res.once("end", () => done(res.complete));
      res.once("error", () => done(false));
    });
    req.once("error", () => done(false));
    req.end();
    if (behaviour.kind === "hang-up-before-answer") {
      setImmediate(() => {
        done(false);
        req.destroy();
      });
    }
  });
}

describe("peer proxy under concurrent load with clients hanging up", () => {
  let origin: TestOrigin;
  let slowOrigin: TestOrigin;
  let cluster: TestCluster;
  let peer: PeerHandle;
  let warm: OriginFile;
  let cold: OriginFile;
  let census: () => FdCensus;

  before(async () => {
    origin = await startOrigin();
    slowOrigin = await startOrigin({ rateBytes: ORIGIN_RATE });
    warm = makeFile(24 * MiB + 5);
    cold = makeFile(32 * MiB + 7);
    origin.add("/warm.bin", warm);
    slowOrigin.add("/cold.bin", cold);
    cluster = await TestCluster.start();
    const seed = await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer");
    const dir = await realpath(peer.dataDir);
    const listenPort = Number(new URL(peer.proxyUrl).port);
    const schedulerPort = Number(new URL(cluster.schedulerUrl).port);
    census = () => fdCensus(peer.proc.proc.pid!, { listenPort, remotePorts: [seed.uploadPort, schedulerPort], dir });
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    await slowOrigin?.close();
  });

  it("every answer read to the end is right, the origin sends each file once, and the descriptors fall back to the baseline", async () => {
    const warmUrl = `${origin.url}/warm.bin`;
    const coldUrl = `${slowOrigin.url}/cold.bin`;
    // The warm file complete on the peer first, so its clients are answered from the stored file.
    const first = await client(peer, warmUrl, { kind: "read-all" });
    assert.equal(first.sha256, warm.sha256);
    const baseline = census();

    const load: [string, Behaviour, number][] = [
      [warmUrl, { kind: "read-all" }, 30],
      [warmUrl, { kind: "hang-up-after", bytes: 256 * 1024 }, 20],
      [coldUrl, { kind: "read-all" }, 20],
      [coldUrl, { kind: "hang-up-after", bytes: 1 }, 15],
      [coldUrl, { kind: "hang-up-before-answer" }, 10],
      [coldUrl, { kind: "local-copy-hang-up" }, 10],
    ];
    const runs = load.flatMap(([url, behaviour, n]) => Array.from({ length: n }, () => client(peer, url, behaviour).then((o) => ({ url, behaviour, o }))));
    const outcomes = await Promise.all(runs);

    for (const { url, behaviour, o } of outcomes.filter((r) => r.behaviour.kind === "read-all")) {
      assert.equal(o.status, 200, `${url} ${behaviour.kind}`);
      assert.ok(o.complete, `${url}: read to the end`);
      assert.equal(o.sha256, url === warmUrl ? warm.sha256 : cold.sha256, `${url}: the file's bytes`);
    }
    assert.equal(origin.sent.get("/warm.bin"), warm.data.length, "the warm file was sent by the origin once");
    assert.equal(slowOrigin.sent.get("/cold.bin"), cold.data.length, "the cold file was sent by the origin once, hang-ups and all");

    let now = census();
    for (let waited = 0; waited < SETTLE_LIMIT_MS && !settled(now, baseline); waited += 250) {
      await sleep(250);
      now = census();
    }
    const report = `baseline ${summary(baseline)}; now ${summary(now)}\n  ${now.targets.join("\n  ")}`;
    assert.equal(now.accepted, 0, `no client connection left open: ${report}`);
    assert.ok(now.files <= baseline.files, `no stored file left open: ${report}`);
    // Node closes a forgotten FileHandle when it is collected, hiding the leak from the count: it says so on stderr.
    const collected = peer.proc.stderr.filter((l) => /Closing file descriptor \d+ on garbage collection/.test(l));
    assert.deepEqual(collected, [], "every stored file closed by the proxy, none left to the garbage collector");
    // Keep-alive connections to the seed peer and the scheduler are client pools, closed by the server when idle; anything else is a leak.
    assert.ok(now.total - now.outgoing <= baseline.total - baseline.outgoing, `descriptors back to the baseline: ${report}`);
  });

  it("and the peer still answers: the cold file, now complete, in full", async () => {
    const o = await client(peer, `${slowOrigin.url}/cold.bin`, { kind: "read-all" });
    assert.equal(o.sha256, cold.sha256);
  });
});

function settled(now: FdCensus, baseline: FdCensus): boolean {
  return now.accepted === 0 && now.files <= baseline.files && now.total - now.outgoing <= baseline.total - baseline.outgoing;
}

function summary(c: FdCensus): string {
  return `${c.total} fds (${c.accepted} accepted on the proxy port, ${c.files} stored files, ${c.outgoing} kept alive to the seed peer and the scheduler)`;
}
