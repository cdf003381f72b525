/**
 * The answer to a P2P GET or HEAD: status, length, range and digest headers, then
 * the bytes. A task already complete is read straight from its stored file (no
 * scheduler, no piece bookkeeping: a read stream piped to the socket); one still
 * downloading is streamed in order as its pieces are verified. A client that asks
 * for trailers (`TE: trailers`, as `kiln get` does) gets a chunked body and the
 * result trailer, which says whether the body was complete and verified.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { open } from "node:fs/promises";
import { PROXY } from "../../common/defaults.js";
import { isVerifiedBlob, parseBlobUrl } from "../../common/oci.js";
import type { Logger } from "../../common/logger.js";
import { DRAGONFLY_HEADERS, KILN_PROXY_HEADERS, encodeResult } from "../../api/proxy.js";
import { parseRange } from "../http-util.js";
import { whenGone, writeFileRange } from "./file-range.js";
import type { ByteRange } from "../../common/piece.js";
import type { ProxyDownload } from "./engine-port.js";

export type ServedFrom = "file" | "stream";

/** How a pipe to the client fails when the client closes its end first. */
const CLIENT_GONE = new Set(["ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED", "ECONNRESET", "EPIPE"]);

export interface P2PResponseOptions {
  /** Sent with the content (a verified blob's Docker-Content-Digest). */
  headers: Record<string, string>;
  log: Logger;
  /** Content bytes written to the client, and where they were read. */
  served(bytes: number, from: ServedFrom): void;
}

interface ResponseHead {
  status: 200 | 206;
  headers: Record<string, string>;
  range: ByteRange | undefined;
  trailers: boolean;
}

/** `Docker-Content-Digest` for a blob whose content is checked against its digest before it is complete; nothing otherwise. */
export function digestHeaders(url: URL): Record<string, string> {
  const blob = parseBlobUrl(url);
  return isVerifiedBlob(blob) ? { "docker-content-digest": blob.digest } : {};
}

export async function sendP2P(req: IncomingMessage, res: ServerResponse, download: ProxyDownload, opts: P2PResponseOptions): Promise<void> {
  res.setHeader(DRAGONFLY_HEADERS.taskId, download.taskId);
  // Headers go out once the length is known, or the task has failed.
  await Promise.race([download.task.waitForLayout(), download.done]);
  const length = download.task.meta.contentLength;
  const range = length !== null ? parseRange(req.headers.range, length) : undefined;
  if (range === "invalid") return void res.writeHead(416, { "content-range": `bytes */${length}` }).end();
  const head = responseHead(req, length, range, opts.headers);
  if (req.method === "HEAD") return void res.writeHead(head.status, head.headers).end();
  if (download.task.complete && length !== null) return sendStoredFile(res, download, head, length, opts);
  return sendWhileDownloading(res, download, head, opts);
}

function responseHead(req: IncomingMessage, length: number | null, range: ByteRange | undefined, extra: Record<string, string>): ResponseHead {
  const trailers = /\btrailers\b/i.test(String(req.headers.te ?? ""));
  const headers: Record<string, string> = { "content-type": "application/octet-stream", "accept-ranges": "bytes", ...extra };
  if (length !== null) {
    const size = range ? range.end - range.start : length;
    headers[trailers ? KILN_PROXY_HEADERS.contentLength : "content-length"] = String(size);
    if (range) headers["content-range"] = `bytes ${range.start}-${range.end - 1}/${length}`;
  }
  if (trailers) headers.trailer = KILN_PROXY_HEADERS.result;
  return { status: range ? 206 : 200, headers, range, trailers };
}

/** A complete task: its stored file, one block at a time as the socket takes them (file-range.ts). */
async function sendStoredFile(res: ServerResponse, download: ProxyDownload, head: ResponseHead, length: number, opts: P2PResponseOptions): Promise<void> {
  const release = download.task.acquire();
  let sent = 0;
  try {
    // Opened before the status goes out: a file evicted meanwhile is an error answer, not a cut body.
    const file = await open(download.task.contentPath, "r");
    try {
      res.writeHead(head.status, head.headers);
      const start = head.range?.start ?? 0;
      const end = head.range?.end ?? length;
      const block = Buffer.allocUnsafeSlow(Math.min(PROXY.fileReadBytes, Math.max(1, end - start)));
      await finish(res, head, download.taskId, opts.log, () =>
        writeFileRange(res, file, start, end, block, (bytes) => {
          sent += bytes;
        }),
      );
    } finally {
      await file.close();
    }
  } finally {
    release();
    opts.served(sent, "file");
  }
}

/**
 * A task still downloading: its verified ranges in order, each read from the stored
 * file through one block, as for a complete task (verified-ranges.ts holds back the
 * end until the whole is verified). A client that hangs up lets the task go at once,
 * even while its next piece is still on the way.
 */
async function sendWhileDownloading(res: ServerResponse, download: ProxyDownload, head: ResponseHead, opts: P2PResponseOptions): Promise<void> {
  const release = download.task.acquire();
  const ranges = download.ranges(head.range)[Symbol.asyncIterator]();
  const client = whenGone(res);
  let sent = 0;
  try {
    // The status waits for the first verified range: a download that fails before it
    // (a blob that does not match its digest, an origin error) gets a JSON error, not a cut connection.
    const first = await Promise.race([ranges.next(), client.gone.catch(() => null)]);
    if (first === null) return void opts.log.debug({ task: download.taskId }, "proxy client went away before the first byte");
    // A download that failed meanwhile has had its file removed: answer with its cause, not ENOENT.
    const file = await open(download.task.contentPath, "r").catch(async (err: unknown) => {
      await download.done;
      throw err;
    });
    try {
      if (res.destroyed) return;
      res.writeHead(head.status, head.headers);
      const block = Buffer.allocUnsafeSlow(PROXY.fileReadBytes);
      await finish(res, head, download.taskId, opts.log, async () => {
        for (let r = first; !r.done; r = await Promise.race([ranges.next(), client.gone])) {
          await writeFileRange(res, file, r.value.start, r.value.end, block, (bytes) => {
            sent += bytes;
          });
        }
      });
    } finally {
      await file.close();
    }
  } finally {
    client.stop();
    release();
    opts.served(sent, "stream");
  }
}

/** Runs `send` (the body onto `res`), then ends the answer: with the result trailer when the client asked for one, else by closing on failure. */
async function finish(res: ServerResponse, head: ResponseHead, taskId: string, log: Logger, send: () => Promise<void>): Promise<void> {
  try {
    await send();
    if (head.trailers) res.addTrailers({ [KILN_PROXY_HEADERS.result]: encodeResult({ ok: true }) });
    res.end();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // A client that hangs up is not a failed download (the task goes on for the others).
    if (res.destroyed || CLIENT_GONE.has((err as NodeJS.ErrnoException).code ?? "")) {
      res.destroy();
      return void log.debug({ task: taskId, err: message }, "proxy client went away mid-stream");
    }
    log.warn({ task: taskId, err: message }, "proxied download failed mid-stream");
    if (head.trailers) {
      res.addTrailers({ [KILN_PROXY_HEADERS.result]: encodeResult({ ok: false, message }) });
      res.end();
    } else {
      res.destroy();
    }
  }
}
