/**
 * The floor one verified hop can reach in Node: one process, HTTP GET on
 * loopback → sha256 while receiving → file. Compiled to plain JS by the bench
 * (so its start-up is Node's, like dist/kiln.mjs) and timed from spawn to exit.
 *
 * argv: <url> <output file> <expected sha256 hex>; exits 1 on any error or digest mismatch.
 */
import http from "node:http";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";

const [url, out, expected] = process.argv.slice(2);
if (!url || !out || !expected) {
  process.stderr.write("usage: node-pipe <url> <output file> <expected sha256>\n");
  process.exit(2);
}
const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(url, { agent: false }, resolve).once("error", reject));
if (res.statusCode !== 200) {
  process.stderr.write(`HTTP ${res.statusCode}\n`);
  process.exit(1);
}
const hash = createHash("sha256");
res.on("data", (c: Buffer) => hash.update(c));
await pipeline(res, createWriteStream(out, { highWaterMark: 4 * 1024 * 1024 }));
const got = hash.digest("hex");
if (got !== expected) {
  process.stderr.write(`sha256 ${got}, expected ${expected}\n`);
  process.exit(1);
}
