/**
 * Origins that break off, with a real scheduler and peer
 * and `kiln get`: a body that closes early is resumed with a Range request carrying
 * If-Range and the file is right; one that always closes early, or stalls, fails
 * with a message saying so and leaves no file; an origin whose content changes
 * between the first request and the resume never yields a file mixing the two.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";

const SIZE = 12 * 1024 * 1024;
const V1 = randomBytes(SIZE);
const V2 = randomBytes(SIZE);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

type Mode = "close-once" | "close-always" | "stall" | "change";

interface Seen {
  range?: string;
  ifRange?: string;
}

/** Serves V1 (ETag "v1") at /<mode>/<n>; what it does wrong depends on the mode. Records each request's Range and If-Range. */
async function startFaultyOrigin() {
  const seen = new Map<string, Seen[]>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? "/";
    const mode = path.split("/")[1] as Mode;
    const list = seen.get(path) ?? [];
    seen.set(path, list);
    list.push({ range: req.headers.range, ifRange: req.headers["if-range"] as string | undefined });
    const first = list.length === 1;
    // "change": the content (and its ETag) is replaced after the first request.
    const [body, etag] = mode === "change" && !first ? [V2, '"v2"'] : [V1, '"v1"'];
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const rangeOk = m && (!req.headers["if-range"] || req.headers["if-range"] === etag);
    const start = rangeOk ? Number(m[1]) : 0;
    const headers = { etag, "content-length": String(SIZE - start), "content-type": "application/octet-stream" };
    if (rangeOk) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${SIZE - 1}/${SIZE}` });
    else res.writeHead(200, headers);
    if (mode === "stall" || ((mode === "close-once" || mode === "change") && first) || mode === "close-always") {
      // Half of what is left (the stall: 100 KB), then close (or nothing more).
      const cut = mode === "stall" ? 100_000 : (SIZE - start) >> 1;
      res.write(body.subarray(start, start + cut), () => {
        if (mode !== "stall") res.destroy();
      });
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: (path: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    seen: (path: string) => seen.get(path) ?? [],
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("origins that break off", () => {
  let cluster: TestCluster;
  let peer: PeerHandle;
  let origin: Awaited<ReturnType<typeof startFaultyOrigin>>;

  before(async () => {
    origin = await startFaultyOrigin();
    cluster = await TestCluster.start({ schedulerArgs: ["--seed-wait-ms", "100"] });
    peer = await cluster.addPeer("peer-1", { args: ["--origin-idle-timeout-ms", "1500", "--origin-resumes", "2"] });
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
  });

  const noPartialFiles = (dir: string) => readdirSync(dir).filter((f) => f.includes(".part") || f.startsWith("."));

  it("a body that closes early once is resumed with Range and If-Range: the file is whole and right", async () => {
    const out = join(cluster.dir, "once.bin");
    const r = await cluster.get(peer, origin.url("/close-once/1"), out);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(readFileSync(out)), sha(V1));
    const seen = origin.seen("/close-once/1");
    assert.equal(seen.length, 2, JSON.stringify(seen));
    assert.equal(seen[0]!.range, undefined);
    assert.match(seen[1]!.range ?? "", /^bytes=\d+-$/);
    assert.equal(seen[1]!.ifRange, '"v1"', "the resume names the version it continues");
  });

  it("a body that always closes early: `kiln get` fails saying how far the origin got, and leaves no file", async () => {
    const out = join(cluster.dir, "always.bin");
    const r = await cluster.get(peer, origin.url("/close-always/1"), out);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /origin closed after \d+ of 12582912 bytes/);
    assert.match(r.stderr, /gave up after 2 resumes/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(
      noPartialFiles(cluster.dir).filter((f) => f.includes("always")),
      [],
    );
    assert.equal(origin.seen("/close-always/1").length, 3, "the first request and two resumes");
  });

  it("a body that stalls: fails with how long the origin sent nothing", async () => {
    const out = join(cluster.dir, "stall.bin");
    const r = await cluster.get(peer, origin.url("/stall/1"), out);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /origin sent nothing for 1\.5 s after \d+ of 12582912 bytes/);
    assert.equal(existsSync(out), false);
  });

  it("content that changes before the resume: never a file mixing two versions", async () => {
    const out = join(cluster.dir, "change.bin");
    const r = await cluster.get(peer, origin.url("/change/1"), out);
    const seen = origin.seen("/change/1");
    assert.equal(seen[1]?.ifRange, '"v1"');
    if (r.code === 0) {
      assert.ok([sha(V1), sha(V2)].includes(sha(readFileSync(out))), "the file is one version whole");
    } else {
      assert.match(r.stderr, /origin content changed during the download/);
      assert.equal(existsSync(out), false);
    }
  });
});
