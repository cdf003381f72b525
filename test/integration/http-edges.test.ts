/**
 * The peer's two HTTP ports at the protocol's edges: malformed requests (smuggling
 * attempts) and ambiguous ones get a JSON 400 and the port keeps serving; an inverted
 * Range is ignored as RFC 9110 says, an unsatisfiable one is 416.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";

/** Sends raw bytes and returns everything the server answered before closing (or 2 s of quiet). */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(request));
    let out = "";
    socket.setTimeout(2_000, () => socket.end());
    socket.on("data", (d) => (out += d.toString("latin1")));
    socket.on("close", () => resolve(out));
    socket.on("error", reject);
  });
}

function status(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

function jsonBody(response: string): { message: string } {
  return JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4));
}

describe("HTTP edges of the upload and proxy ports", () => {
  let cluster: TestCluster;
  let seed: PeerHandle;
  let peer: PeerHandle;
  let origin: TestOrigin;
  let file: OriginFile;
  let dir: string;
  let taskId: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-http-edges-"));
    origin = await startOrigin();
    file = makeFile(300 * 1024);
    origin.add("/edges.bin", file);
    cluster = await TestCluster.start({ clusterSecret: "http-edges-cluster-secret-0123456789" });
    seed = await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer");
    const got = await cluster.get(peer, `${origin.url}/edges.bin`, join(dir, "edges.bin"));
    assert.equal(got.code, 0, got.stderr);
    taskId = /task ([0-9a-f]{64})/.exec(got.stderr)![1]!;
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers smuggling attempts and malformed requests with a JSON 400 on both ports, and keeps serving", async () => {
    const proxyPort = Number(new URL(peer.proxyUrl).port);
    const attempts = [
      "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
      "NOT-HTTP\r\n\r\n",
    ];
    for (const port of [peer.uploadPort, proxyPort]) {
      for (const attempt of attempts) {
        const answer = await raw(port, attempt);
        assert.equal(status(answer), 400, `${port} ${JSON.stringify(attempt)} → ${answer}`);
        assert.match(jsonBody(answer).message, /^malformed HTTP request/);
      }
      const twoHosts = await raw(port, "GET /healthy HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
      assert.equal(status(twoHosts), 400, twoHosts);
      assert.equal(jsonBody(twoHosts).message, "more than one Host header");
    }
    assert.equal((await fetch(`http://127.0.0.1:${peer.uploadPort}/healthy`)).status, 200);
    assert.equal((await fetch(`${peer.proxyUrl}/healthy`)).status, 200);
  });

  it("ignores an inverted Range (whole body, 200) and answers 416 to an unsatisfiable one", async () => {
    const member = cluster.uploadHeaders();
    const whole = await fetch(`http://127.0.0.1:${seed.uploadPort}/tasks/${taskId}`, { headers: { ...member, range: "bytes=5-1" } });
    assert.equal(whole.status, 200);
    assert.equal(
      createHash("sha256")
        .update(Buffer.from(await whole.arrayBuffer()))
        .digest("hex"),
      file.sha256,
    );
    const beyond = await fetch(`http://127.0.0.1:${seed.uploadPort}/tasks/${taskId}`, { headers: { ...member, range: `bytes=${file.data.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), `bytes */${file.data.length}`);
    const part = await fetch(`http://127.0.0.1:${seed.uploadPort}/tasks/${taskId}`, { headers: { ...member, range: "bytes=10-19" } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), file.data.subarray(10, 20));
  });
});
