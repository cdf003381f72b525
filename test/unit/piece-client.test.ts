/** The piece client against in-process servers speaking raw HTTP/1.1: bodies in any segmentation, errors by kind, kept-alive reuse. */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { fetchPieceInto, type PieceFetchError, type PieceSink } from "../../src/peer/download/piece-client.js";
import { parent } from "../helpers/download-fakes.js";
import { releaseView, retainView } from "../../src/peer/blocks.js";

const TASK = "a".repeat(64);

class Collect implements PieceSink {
  chunks: Buffer[] = [];
  write(chunk: Buffer): boolean {
    // Copy: a test that reads the bytes later must not depend on the client's blocks staying as they were.
    this.chunks.push(Buffer.from(chunk));
    return true;
  }
  async drained(): Promise<void> {}
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A server that answers each request line with `respond(socket, requestCount)`. */
async function rawServer(respond: (socket: net.Socket, nth: number) => void) {
  let requests = 0;
  const connections: net.Socket[] = [];
  const server = net.createServer((socket) => {
    connections.push(socket);
    let buffered = "";
    socket.on("data", (d) => {
      buffered += d.toString("latin1");
      while (buffered.includes("\r\n\r\n")) {
        buffered = buffered.slice(buffered.indexOf("\r\n\r\n") + 4);
        respond(socket, ++requests);
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    parent: { ...parent("p", []), uploadPort: port },
    connections,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const c of connections) c.destroy();
        server.close(() => r());
      }),
  };
}

const fetch = (p: ReturnType<typeof parent>, sink: PieceSink, stallMs = 2_000) => fetchPieceInto(p, TASK, 3, sink, stallMs, new AbortController().signal);

describe("piece client", () => {
  const servers: { close(): Promise<void> }[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  it("receives a body split anywhere (head and body in one segment, or byte by byte), and reuses the connection", async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const s = await rawServer((socket, nth) => {
      const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Kiln-Piece-Digest: sha256:x\r\n\r\n`);
      if (nth === 1) return void socket.write(Buffer.concat([head, body]));
      // Second time: the head in pieces, then the body in odd sizes.
      for (let i = 0; i < head.length; i++) socket.write(head.subarray(i, i + 1));
      for (let off = 0; off < body.length; off += 99_991) socket.write(body.subarray(off, off + 99_991));
    });
    servers.push(s);
    for (let i = 0; i < 2; i++) {
      const sink = new Collect();
      await fetch(s.parent, sink);
      assert.ok(sink.bytes.equals(body), `response ${i + 1} arrived whole and unchanged`);
    }
    assert.equal(s.connections.length, 1, "one kept-alive connection served both");
  });

  it("bytes a sink retains stay as they were while later ones arrive and other fetches run (no block is reused under them)", async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const s = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      for (let off = 0; off < body.length; off += 65_536) socket.write(body.subarray(off, off + 65_536));
    });
    servers.push(s);
    const views: Buffer[] = [];
    await fetch(s.parent, { write: (c) => (retainView(c), views.push(c), true), drained: async () => undefined });
    await fetch(s.parent, { write: () => true, drained: async () => undefined });
    await fetch(s.parent, { write: () => true, drained: async () => undefined });
    assert.ok(Buffer.concat(views).equals(body));
    for (const v of views) releaseView(v);
  });

  it("429 is 'busy', other statuses 'http_error' with the parent's message; the connection stays usable", async () => {
    const s = await rawServer((socket, nth) => {
      const msg = JSON.stringify({ message: nth === 1 ? "all upload slots are busy" : "piece 3 is not available here" });
      socket.write(
        `HTTP/1.1 ${nth === 1 ? "429 Too Many Requests" : "404 Not Found"}\r\nContent-Type: application/json\r\nContent-Length: ${msg.length}\r\n\r\n${msg}`,
      );
    });
    servers.push(s);
    await assert.rejects(fetch(s.parent, new Collect()), (e: PieceFetchError) => e.kind === "busy");
    await assert.rejects(fetch(s.parent, new Collect()), (e: PieceFetchError) => e.kind === "http_error" && /404.*not available here/.test(e.message));
    assert.equal(s.connections.length, 1);
  });

  it("a 200 whose body is cut short is an 'http_error' (the parent announced a piece it did not give); a parent that stops sending is a 'timeout'", async () => {
    const s = await rawServer((socket, nth) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${"x".repeat(10)}`);
      if (nth === 1) socket.end();
    });
    servers.push(s);
    await assert.rejects(fetch(s.parent, new Collect()), (e: PieceFetchError) => e.kind === "http_error" && /short of its length/.test(e.message));
    await assert.rejects(fetch(s.parent, new Collect(), 200), (e: PieceFetchError) => e.kind === "timeout" && /stalled/.test(e.message));
  });

  it("more bytes than announced, or no Content-Length, is an 'http_error'", async () => {
    const s = await rawServer((socket, nth) => {
      if (nth === 1) socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef`);
      else socket.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    });
    servers.push(s);
    await assert.rejects(fetch(s.parent, new Collect()), (e: PieceFetchError) => e.kind === "http_error" && /more than it announced/.test(e.message));
    await assert.rejects(fetch(s.parent, new Collect()), (e: PieceFetchError) => e.kind === "http_error" && /malformed/.test(e.message));
  });

  it("nobody listening is 'unreachable' naming the refusal; a kept-alive connection the parent closed is retried on a new one", async () => {
    const closed = await rawServer(() => undefined);
    await closed.close();
    await assert.rejects(fetch(closed.parent, new Collect()), (e: PieceFetchError) => e.kind === "unreachable" && /refused/.test(e.message));

    // A real node:http server that closes idle connections at once.
    const server = http.createServer((_req, res) => res.writeHead(200, { "content-length": "2" }).end("ok"));
    server.keepAliveTimeout = 1;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push({ close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) });
    const p = { ...parent("h", []), uploadPort: (server.address() as AddressInfo).port };
    for (let i = 0; i < 3; i++) {
      const sink = new Collect();
      await fetch(p, sink);
      assert.equal(sink.bytes.toString(), "ok");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("a sink that refuses a chunk (a piece longer than expected) fails the fetch instead of the process", async () => {
    const s = await rawServer((socket) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello`));
    servers.push(s);
    const sink: PieceSink = {
      write: () => {
        throw new Error("piece 3 is longer than expected");
      },
      drained: async () => undefined,
    };
    await assert.rejects(fetch(s.parent, sink), /longer than expected/);
  });
});
