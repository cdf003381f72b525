/** `kiln get URL -O FILE`: a download through the local peer's P2P proxy, dfget-style. */
import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import cliProgress from "cli-progress";
import { DEFAULT_PROXY_FILTER, PORTS } from "../common/defaults.js";
import { validateExplicitPieceLength } from "../common/piece.js";
import { DRAGONFLY_HEADERS, KILN_PROXY_HEADERS } from "../api/proxy.js";
import { splitHeaderLine } from "../common/headers.js";
import { collect, parseBytes, parseDuration } from "./options.js";
import { formatBytes } from "./format.js";
import { PendingOutput } from "./get-output.js";
import { announcedLength, assertOk, isLocalCopyAnswer, requestFromPeer, taskIdOf } from "./get-peer.js";
import { receiveLocalCopy, type LocalCopyHow } from "./get-local-copy.js";
import { receiveStream } from "./get-stream.js";
import { removeOnInterrupt } from "./get-interrupt.js";

interface GetFlags {
  output?: string;
  header: string[];
  tag: string;
  application: string;
  filter: string;
  pieceLength?: number;
  peer: string;
  progress: boolean;
  localCopy: boolean;
  hardLink: boolean;
  requestTimeout: number;
}

const LOCAL_COPY_SAID: Record<LocalCopyHow, string> = {
  reflink: "cloned from the peer's store (a reflink)",
  "hard link": "hard-linked to the peer's stored file (no copy; --no-hard-link for a file of your own)",
  copy: "copied from the peer's store",
};

/** The peer must accept the connection within this (it is on this host or near it). */
const PEER_CONNECT_TIMEOUT_MS = 5_000;
/**
 * The peer answers once the task's layout is known: the scheduler registered it and the
 * first piece's source (a parent, or the origin, whose own headers may take 30 s) answered.
 */
const DEFAULT_PEER_ANSWER_TIMEOUT = "60s";

export function registerGetCommand(program: Command): void {
  program
    .command("get")
    .description("download a URL through the P2P swarm (via the local kiln peer)")
    .argument("<url>", "what to download")
    .option("-O, --output <file>", "where to save it, written only when complete and verified (default: the URL's file name, in this directory)")
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
    .option(
      "--request-timeout <duration>",
      `longest wait for the peer's answer, e.g. 60s, 5m; the connection must be accepted within 5 s (env KILN_REQUEST_TIMEOUT; default ${DEFAULT_PEER_ANSWER_TIMEOUT})`,
      parseDuration,
      parseDuration(process.env.KILN_REQUEST_TIMEOUT || DEFAULT_PEER_ANSWER_TIMEOUT),
    )
    .option(
      "--no-local-copy",
      "receive the content over the connection even when the peer runs on this host (the output is made from its stored file otherwise)",
    )
    .option(
      "--no-hard-link",
      "on the peer's host, copy the peer's stored file rather than hard-link it where no reflink is possible: the output is then a file of your own, at the cost of a copy",
    )
    .action(async (url: string, f: GetFlags) => {
      try {
        await get(url, f);
      } catch (err) {
        process.stderr.write(`kiln get: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}

/** curl -O's rule: the last segment of the URL's path, or an error when it names no file. */
function fileNameOf(url: URL): string {
  const name = decodeURIComponent(url.pathname.split("/").pop() ?? "");
  if (!name || name === "." || name === "..") throw new Error(`${url.href} names no file; give one with -O FILE`);
  return name;
}

/** An error about the temporary file speaks of the file the user asked for. */
function namingTarget(err: unknown, output: PendingOutput): unknown {
  if (!(err instanceof Error) || !err.message.includes(output.tmp)) return err;
  return new Error(err.message.replaceAll(output.tmp, output.target));
}

function parseHeaders(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const header = splitHeaderLine(line);
    if (!header) throw new Error(`bad --header ${JSON.stringify(line)}: use 'Name: value'`);
    out[header.name.toLowerCase()] = header.value;
  }
  return out;
}

async function get(url: string, f: GetFlags): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`not a URL: ${url}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new Error(`only http:// and https:// URLs can be downloaded, not ${parsed.protocol}// (${url})`);
  }
  const out = f.output ?? fileNameOf(parsed);
  const target = await stat(out).catch(() => undefined);
  if (target?.isDirectory()) throw new Error(`${out} is a directory; give a file name to -O`);
  const dir = await stat(dirname(out)).catch(() => undefined);
  if (!dir?.isDirectory()) throw new Error(`cannot save to ${out}: the directory ${dirname(out)} does not exist`);
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

  const output = new PendingOutput(out);
  const bar = new ProgressBar(f.progress && process.stderr.isTTY);
  const keepOnExit = removeOnInterrupt(output, () => bar.stop());
  try {
    await download(url, f, peer, headers, output, bar);
  } finally {
    keepOnExit();
  }
}

/** Receives `url` from the peer into `output` and commits it; on any failure the temporary file is removed and the error rethrown. */
async function download(url: string, f: GetFlags, peer: URL, headers: Record<string, string>, output: PendingOutput, bar: ProgressBar): Promise<void> {
  const started = Date.now();
  // The peer decides whether a local copy is possible (a loopback client); older peers ignore the header and stream.
  const timeouts = { connectMs: PEER_CONNECT_TIMEOUT_MS, answerMs: f.requestTimeout };
  let res = await requestFromPeer(peer, url, f.localCopy ? { ...headers, [KILN_PROXY_HEADERS.localCopy]: "1" } : headers, timeouts);
  await assertOk(res);
  const taskId = taskIdOf(res);
  bar.start(announcedLength(res), started);
  let bytes: number;
  let how: string;
  try {
    if (isLocalCopyAnswer(res)) {
      const local = await receiveLocalCopy(res, output, { hardLink: f.hardLink, onProgress: (n) => bar.update(n) }).finally(() => res.destroy());
      if (local.copied) {
        bytes = local.bytes;
        how = LOCAL_COPY_SAID[local.how];
      } else {
        res = await requestFromPeer(peer, url, headers, timeouts);
        await assertOk(res);
        bytes = await receiveStream(res, output, (n) => bar.update(n));
        how = `streamed from the peer (no local copy: ${local.reason})`;
      }
    } else {
      bytes = await receiveStream(res, output, (n) => bar.update(n));
      how = "streamed from the peer";
    }
    bar.stop();
    await output.commit();
  } catch (err) {
    bar.stop();
    await output.discard();
    throw namingTarget(err, output);
  }
  const secs = (Date.now() - started) / 1000;
  process.stderr.write(
    `saved ${output.target}: ${formatBytes(bytes)} in ${secs.toFixed(2)} s (${formatBytes(bytes / Math.max(secs, 0.001))}/s), task ${taskId}, ${how}\n`,
  );
}

/** The progress bar on a terminal; does nothing otherwise. */
class ProgressBar {
  private bar: cliProgress.SingleBar | undefined;
  private started = 0;

  constructor(private readonly enabled: boolean) {}

  start(total: number | undefined, started: number): void {
    if (!this.enabled) return;
    this.started = started;
    this.bar = new cliProgress.SingleBar(
      { format: " {bar} {percentage}% | {done} / {size} | {speed}/s | ETA {eta_formatted}", hideCursor: true, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total ?? 0, 0, { done: "0 B", size: total !== undefined ? formatBytes(total) : "?", speed: "0 B" });
  }

  update(bytes: number): void {
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    this.bar?.update(bytes, { done: formatBytes(bytes), speed: formatBytes(bytes / secs) });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
