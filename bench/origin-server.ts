/**
 * The bench origin, run as its own process (started by bench/procs.ts) so that
 * serving bytes never competes with the bench's own clients for one event loop.
 *
 * argv: <file> <bytesPerSec (0 = unlimited)> [listen address, default 127.0.0.1]
 * Serves the file at GET/HEAD /file with single byte ranges (Range: bytes=a-b,
 * a-, -n); every connection draws from one shared limiter (total bandwidth cap).
 * Counts the body bytes it sends. IPC: sends {type:"ready", port}; answers
 * {type:"stats", id} with {type:"stats", id, sentBytes, requests, rangeRequests}.
 * Exits when the parent goes away.
 */
import http from "node:http";
import { createReadStream, statSync } from "node:fs";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AddressInfo } from "node:net";
import { SharedRateLimiter } from "./limiter.js";

const [file, rateArg, listenIp = "127.0.0.1"] = process.argv.slice(2);
if (!file || rateArg === undefined || !process.send) {
  process.stderr.write("usage: started by bench/procs.ts with <file> <bytesPerSec> [listen address] and an IPC channel\n");
  process.exit(2);
}
const size = statSync(file).size;
const limiter = new SharedRateLimiter(Number(rateArg));
const CHUNK = 256 * 1024;

let sentBytes = 0;
let requests = 0;
let rangeRequests = 0;

function parseRange(header: string | undefined): { start: number; end: number } | "invalid" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "invalid";
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size : Math.min(size, Number(m[2]) + 1);
  if (start >= size || end <= start) return "invalid";
  return { start, end };
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/file") return void res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  if (req.method !== "GET" && req.method !== "HEAD") return void res.writeHead(405).end();
  requests++;
  const range = parseRange(req.headers.range);
  if (range === "invalid") return void res.writeHead(416, { "content-range": `bytes */${size}` }).end();
  const start = range?.start ?? 0;
  const end = range?.end ?? size;
  const headers: Record<string, string | number> = { "content-type": "application/octet-stream", "content-length": end - start, "accept-ranges": "bytes" };
  if (range) {
    rangeRequests++;
    headers["content-range"] = `bytes ${start}-${end - 1}/${size}`;
  }
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === "HEAD" || end === start) return void res.end();
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      limiter.take(chunk.length).then(() => {
        sentBytes += chunk.length;
        cb(null, chunk);
      }, cb);
    },
  });
  pipeline(createReadStream(file, { start, end: end - 1, highWaterMark: CHUNK }), meter, res).catch(() => {
    /* the client went away; what was sent is counted */
  });
});
server.keepAliveTimeout = 30_000;

server.listen(0, listenIp, () => {
  process.send!({ type: "ready", port: (server.address() as AddressInfo).port });
});

process.on("message", (msg: { type?: string; id?: number }) => {
  if (msg?.type === "stats") process.send!({ type: "stats", id: msg.id, sentBytes, requests, rangeRequests });
});
process.on("disconnect", () => process.exit(0));
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
