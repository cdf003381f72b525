/** `kiln get URL -O FILE`: a download through the local peer's P2P proxy, dfget-style. */
import http from "node:http";
import { createWriteStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import cliProgress from "cli-progress";
import { DEFAULT_PROXY_FILTER, HEADERS, PORTS } from "../common/defaults.js";
import { describeNetworkError } from "../common/errors.js";
import { validateExplicitPieceLength } from "../common/piece.js";
import { DRAGONFLY_HEADERS, LENGTH_HEADER, RESULT_TRAILER } from "../peer/proxy-server.js";
import { collect, parseBytes } from "./options.js";
import { formatBytes } from "./format.js";

interface GetFlags {
  output: string;
  header: string[];
  tag: string;
  application: string;
  filter: string;
  pieceLength?: number;
  peer: string;
  progress: boolean;
}

export function registerGetCommand(program: Command): void {
  program
    .command("get")
    .description("download a URL through the P2P swarm (via the local kiln peer)")
    .argument("<url>", "what to download")
    .requiredOption("-O, --output <file>", "where to save it (written only when complete and verified)")
    .option("-H, --header <header>", "request header for the origin, 'Name: value' (repeatable)", collect, [])
    .option("--tag <tag>", "tells apart tasks with the same URL", "")
    .option("--application <name>", "application name, part of the task ID", "")
    .option("--filter <params>", "query parameters left out of the task ID, '&'-separated", DEFAULT_PROXY_FILTER)
    .option("--piece-length <bytes>", "explicit piece length (4MiB..1GiB; part of the task ID)", (v) => {
      try {
        return validateExplicitPieceLength(parseBytes(v));
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    })
    .option("--peer <url>", "the local peer's proxy address", process.env.KILN_PEER ?? `http://127.0.0.1:${PORTS.peerProxy}`)
    .option("--no-progress", "no progress bar")
    .action(async (url: string, f: GetFlags) => {
      try {
        await get(url, f);
      } catch (err) {
        process.stderr.write(`kiln get: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}

function parseHeaders(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i <= 0) throw new Error(`bad --header ${JSON.stringify(line)}: use 'Name: value'`);
    out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

async function get(url: string, f: GetFlags): Promise<void> {
  try {
    new URL(url);
  } catch {
    throw new Error(`not a URL: ${url}`);
  }
  const target = await stat(f.output).catch(() => undefined);
  if (target?.isDirectory()) throw new Error(`${f.output} is a directory; give a file name to -O`);
  const peer = new URL(f.peer);
  const headers: Record<string, string> = {
    ...parseHeaders(f.header),
    te: "trailers",
    [DRAGONFLY_HEADERS.useP2P]: "true",
    [DRAGONFLY_HEADERS.filter]: f.filter,
  };
  if (f.tag) headers[DRAGONFLY_HEADERS.tag] = f.tag;
  if (f.application) headers[DRAGONFLY_HEADERS.application] = f.application;
  if (f.pieceLength) headers[DRAGONFLY_HEADERS.pieceLength] = String(f.pieceLength);

  const started = Date.now();
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: peer.hostname, port: peer.port || 80, method: "GET", path: url, headers }, resolve);
    req.once("error", (err) =>
      reject(new Error(`cannot reach the kiln peer at ${peer.origin}: ${describeNetworkError(err)}; is \`kiln peer\` or \`kiln up\` running?`)),
    );
    req.end();
  });
  if (res.statusCode !== 200) {
    let body = "";
    for await (const c of res) body += c;
    let message = `HTTP ${res.statusCode}`;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? message;
    } catch {
      /* keep the status */
    }
    throw new Error(`${message} (status ${res.statusCode})`);
  }

  const total = Number(res.headers[LENGTH_HEADER] ?? NaN);
  const taskId = String(res.headers[HEADERS.taskId] ?? "");
  const tmp = join(dirname(f.output), `.${basename(f.output)}.kiln-${randomBytes(4).toString("hex")}.part`);
  const bar = f.progress && process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { format: " {bar} {percentage}% | {done} / {size} | {speed}/s | ETA {eta_formatted}", hideCursor: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let received = 0;
  bar?.start(Number.isFinite(total) ? total : 0, 0, { done: "0 B", size: Number.isFinite(total) ? formatBytes(total) : "?", speed: "0 B" });
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      received += chunk.length;
      const secs = Math.max(0.001, (Date.now() - started) / 1000);
      bar?.update(received, { done: formatBytes(received), speed: formatBytes(received / secs) });
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res, counter, createWriteStream(tmp, { mode: 0o644 }));
    bar?.stop();
    const result = res.trailers[RESULT_TRAILER];
    if (result !== "ok") {
      const why = result?.startsWith("error: ") ? decodeURIComponent(result.slice(7)) : "the peer closed the stream before the end";
      throw new Error(`download failed: ${why}`);
    }
    if (Number.isFinite(total) && received !== total) throw new Error(`download incomplete: got ${received} of ${total} bytes`);
    const fh = await open(tmp, "r");
    await fh.sync();
    await fh.close();
    await rename(tmp, f.output);
  } catch (err) {
    bar?.stop();
    await rm(tmp, { force: true });
    if ((err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE" || (err as NodeJS.ErrnoException).code === "ECONNRESET") {
      throw new Error("download failed: the peer closed the stream before the end");
    }
    throw err;
  }
  const secs = (Date.now() - started) / 1000;
  process.stderr.write(`saved ${f.output}: ${formatBytes(received)} in ${secs.toFixed(2)} s (${formatBytes(received / Math.max(secs, 0.001))}/s), task ${taskId}\n`);
}
