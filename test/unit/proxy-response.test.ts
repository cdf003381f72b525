/**
 * The proxy's answers to a P2P request, driven with a fake download over a real
 * loopback HTTP server: a complete task is read from its stored file (never
 * through the download stream), with the headers a registry client relies on;
 * a task still downloading is streamed; a local copy names the stored file and
 * keeps the task pinned until the client lets go.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/common/logger.js";
import { decodeLocalCopyMessage, decodeResult, type LocalCopyMessage } from "../../src/api/proxy.js";
import type { ByteRange } from "../../src/common/piece.js";
import type { ProxyDownload } from "../../src/peer/proxy/engine-port.js";
import { sendP2P, type ServedFrom } from "../../src/peer/proxy/p2p-response.js";
import { sendLocalCopy } from "../../src/peer/proxy/local-copy.js";

const log = createLogger("test");

interface FakeDownload extends ProxyDownload {
  pins: number;
  rangesCalls: number;
  finish(err?: Error): void;
  setStored(bytes: number): void;
}

/** A download of `content` stored at `path`: complete already, or finishing when told to. */
function fakeDownload(path: string, content: Buffer, complete: boolean): FakeDownload {
  let settle!: (err?: Error) => void;
  const done = complete ? Promise.resolve() : new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
  done.catch(() => undefined);
  let stored = complete ? content.length : 0;
  const fake: FakeDownload = {
    taskId: "a".repeat(64),
    pins: 0,
    rangesCalls: 0,
    done,
    task: {
      get complete() {
        return complete;
      },
      contentPath: path,
      meta: { contentLength: content.length, access: null },
      get bytesOnDisk() {
        return stored;
      },
      acquire() {
        fake.pins++;
        let released = false;
        return () => {
          if (!released) fake.pins--;
          released = true;
        };
      },
      waitForLayout: () => Promise.resolve(),
    },
    // The first half of the stored file is verified at once, the rest once the download is done.
    async *ranges(range?: ByteRange) {
      fake.rangesCalls++;
      const start = range?.start ?? 0;
      const end = range?.end ?? content.length;
      const mid = start + ((end - start) >> 1);
      yield { start, end: mid };
      await done;
      yield { start: mid, end };
    },
    finish(err) {
      complete = !err;
      if (!err) stored = content.length;
      settle(err);
    },
    setStored(bytes) {
      stored = bytes;
    },
  };
  return fake;
}

/** The server side finishes (counters, release) just after the client has the last byte. */
async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), what);
}

describe("proxy answers to P2P requests", () => {
  let dir: string;
  let path: string;
  const content = randomBytes(3 * 1024 * 1024 + 17);
  let handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  let server: http.Server;
  let base: string;
  const served: [number, ServedFrom][] = [];
  const p2p = (download: ProxyDownload) => (req: IncomingMessage, res: ServerResponse) =>
    sendP2P(req, res, download, { headers: { "docker-content-digest": "sha256:x" }, log, served: (n, from) => void served.push([n, from]) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-proxy-response-"));
    path = join(dir, "content");
    await writeFile(path, content);
    server = http.createServer((req, res) => void handler(req, res).catch((err: Error) => res.writeHead(500).end(err.message)));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  /** One raw GET/HEAD; resolves with status, headers, body and trailers. */
  function request(method: string, headers: Record<string, string> = {}) {
    return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      http
        .request(`${base}/x`, { method, headers, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers }));
          res.on("error", reject);
        })
        .on("error", reject)
        .end();
    });
  }

  it("a complete task: its stored file, with Content-Length and the digest; never the download stream", async () => {
    const download = fakeDownload(path, content, true);
    handler = p2p(download);
    served.length = 0;
    const r = await request("GET");
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], String(content.length));
    assert.equal(r.headers["docker-content-digest"], "sha256:x");
    assert.equal(r.headers["x-dragonfly-task-id"], download.taskId);
    assert.ok(r.body.equals(content));
    assert.equal(download.rangesCalls, 0, "not piece by piece for a complete task");
    await until("counted as read from the file", () => served.length > 0);
    assert.deepEqual(served, [[content.length, "file"]]);
    assert.equal(download.pins, 0, "released after the answer");
  });

  it("a complete task: ranges, suffix ranges, an unsatisfiable range, and HEAD", async () => {
    const download = fakeDownload(path, content, true);
    handler = p2p(download);
    const mid = await request("GET", { range: "bytes=1048570-2097160" });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers["content-range"], `bytes 1048570-2097160/${content.length}`);
    assert.ok(mid.body.equals(content.subarray(1048570, 2097161)));
    const tail = await request("GET", { range: "bytes=-10" });
    assert.ok(tail.body.equals(content.subarray(content.length - 10)));
    const beyond = await request("GET", { range: `bytes=${content.length}-` });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers["content-range"], `bytes */${content.length}`);
    const head = await request("HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String(content.length));
    assert.equal(head.body.length, 0);
    assert.equal(download.rangesCalls, 0);
  });

  it("a complete task asked with TE: trailers: chunked, the length in its own header, and an ok result trailer", async () => {
    handler = p2p(fakeDownload(path, content, true));
    served.length = 0;
    const r = await request("GET", { te: "trailers" });
    assert.equal(r.headers["content-length"], undefined);
    assert.equal(r.headers["x-kiln-content-length"], String(content.length));
    assert.ok(r.body.equals(content));
    assert.deepEqual(decodeResult(r.trailers["x-kiln-result"]), { ok: true });
    // Counted once the answer ends, which may be after the client has it all.
    await until("counted as read from the file", () => served.length > 0);
    assert.deepEqual(served, [[content.length, "file"]]);
  });

  it("a task still downloading is streamed; a failure after the first bytes ends in an error trailer", async () => {
    const good = fakeDownload(path, content, false);
    handler = p2p(good);
    served.length = 0;
    const pending = request("GET");
    // Finished only once the answer streams: a fixed delay raced a loaded machine (the task was complete first).
    await until("the answer streams", () => good.rangesCalls === 1);
    good.finish();
    const r = await pending;
    assert.ok(r.body.equals(content));
    assert.equal(good.rangesCalls, 1);
    await until("counted as streamed", () => served.length > 0);
    assert.deepEqual(served, [[content.length, "stream"]]);

    const bad = fakeDownload(path, content, false);
    handler = p2p(bad);
    const failing = request("GET", { te: "trailers" });
    await until("the failing answer streams", () => bad.rangesCalls === 1);
    bad.finish(new Error("piece 3 failed its digest"));
    const f = await failing;
    assert.equal(f.status, 200);
    assert.ok(f.body.length < content.length);
    assert.deepEqual(decodeResult(f.trailers["x-kiln-result"]), { ok: false, message: "piece 3 failed its digest" });
  });

  it("a client that hangs up before the first verified byte: the task is let go at once, not when a byte comes", async () => {
    const download = fakeDownload(path, content, false);
    download.ranges = async function* () {
      download.rangesCalls++;
      await download.done;
      yield { start: 0, end: content.length };
    };
    handler = p2p(download);
    const req = http.request(`${base}/x`, { agent: false });
    req.on("error", () => undefined);
    req.end();
    await until("the answer is waiting for its first byte", () => download.rangesCalls === 1 && download.pins === 1);
    req.destroy();
    await until("released while the download still runs", () => download.pins === 0);
    download.finish();
  });

  /** A local-copy request: the messages as they arrive; the connection stays open until `release` is called. */
  function localCopy(download: FakeDownload) {
    handler = (_req, res) => sendLocalCopy(res, download, { log, handedOver: () => undefined });
    const messages: LocalCopyMessage[] = [];
    let res: http.IncomingMessage | undefined;
    const ended = new Promise<void>((resolve, reject) => {
      http
        .get(`${base}/x`, { agent: false }, (r) => {
          res = r;
          let buf = "";
          r.setEncoding("utf8").on("data", (d: string) => {
            buf += d;
            for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
              messages.push(decodeLocalCopyMessage(buf.slice(0, i))!);
              buf = buf.slice(i + 1);
            }
          });
          r.on("end", resolve).on("close", resolve);
        })
        .on("error", reject);
    });
    return { messages, ended, release: () => res?.destroy() };
  }

  it("a local copy: progress while downloading, then the file's path and identity; pinned until the client closes", async () => {
    const download = fakeDownload(path, content, false);
    const client = localCopy(download);
    await until("first progress", () => client.messages.length > 0);
    download.setStored(1024 * 1024);
    await until("progress of the stored megabyte", () => client.messages.some((m) => m.type === "progress" && m.bytes === 1024 * 1024));
    download.finish();
    await until("ready", () => client.messages.some((m) => m.type === "ready"));
    const ready = client.messages.find((m) => m.type === "ready")!;
    const st = await stat(path, { bigint: true });
    assert.deepEqual(ready, { type: "ready", path, size: content.length, dev: String(st.dev), ino: String(st.ino) });
    assert.equal(download.pins, 1, "pinned while the client copies");
    assert.equal(download.rangesCalls, 0, "no bytes streamed");
    client.release();
    await client.ended;
    await until("released once the client closed", () => download.pins === 0);
  });

  it("a local copy whose download fails: an error message, and the task let go", async () => {
    const download = fakeDownload(path, content, false);
    const client = localCopy(download);
    await until("first progress", () => client.messages.length > 0);
    download.finish(new Error("origin answered 500"));
    await client.ended;
    assert.deepEqual(client.messages.at(-1), { type: "error", message: "origin answered 500" });
    assert.equal(download.pins, 0);
  });
});
