/**
 * Back-to-source: one GET to the origin from the first missing piece on, cut into
 * pieces as the bytes arrive. Each piece is hashed and stored; where the scheduler
 * already knows its digest it must match. This peer's digests become canonical.
 */
import { finished, type Readable } from "node:stream";
import { KilnError, describeNetworkError } from "../../common/errors.js";
import { defaultPieceLength } from "../../common/piece.js";
import { redact } from "../../common/redact.js";
import type { Logger } from "../../common/logger.js";
import type { DownloadSpec } from "../../api/common.js";
import type { PieceInfo } from "../../api/scheduler.js";
import type { StoredTask } from "../storage/stored-task.js";
import { PieceWriter } from "../storage/piece-writer.js";
import { fetchOrigin, type OriginResponse } from "./origin.js";

/** Where back-to-source bytes come from (the origin over HTTP; a fake in tests). */
export interface OriginSource {
  open(url: string, headers: Record<string, string>, opts: { from: number }): Promise<OriginResponse<Readable>>;
}

export const httpOrigin: OriginSource = { open: (url, headers, opts) => fetchOrigin(url, headers, opts) };

export interface SourceHooks {
  /** The layout is fixed (content length null while the origin does not say). */
  layout(layout: { contentLength?: number | null; pieceLength?: number }): Promise<void>;
  /** A piece is verified and stored. */
  piece(info: PieceInfo): void;
  /** The canonical digest of piece `n`, when the scheduler knows one. */
  known(n: number): PieceInfo | undefined;
}

/** Fetches what the task lacks from the origin; resolves when the body is stored, or at once if `signal` aborts. */
export async function backToSource(
  origin: OriginSource,
  spec: DownloadSpec,
  task: StoredTask,
  hooks: SourceHooks,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const meta = task.meta;
  let from = 0;
  if (meta.pieceLength !== null) {
    let first = 0;
    while (task.hasPiece(first)) first++;
    from = first * meta.pieceLength;
    if (meta.contentLength !== null && from >= meta.contentLength) return;
  }
  log.info({ url: redact(spec.url), from }, "fetching from the origin");
  const res = await origin.open(spec.url, spec.headers, { from });
  const pieceLength = meta.pieceLength ?? spec.pieceLength ?? defaultPieceLength(res.contentLength ?? undefined);
  try {
    if (res.offset % pieceLength !== 0) {
      throw new KilnError("ORIGIN_STATUS", `origin answered a range starting at ${res.offset}, not a piece boundary`, 502);
    }
    await task.setLayout(res.contentLength, pieceLength);
    await hooks.layout({ contentLength: res.contentLength, pieceLength });
  } catch (err) {
    res.body.destroy();
    throw err;
  }
  const total = await cutIntoPieces(res.body, task, res.offset, hooks, signal);
  if (res.contentLength !== null && total !== res.contentLength) {
    throw new KilnError("ORIGIN_UNREACHABLE", `origin closed the connection after ${total} of ${res.contentLength} bytes`);
  }
  if (meta.contentLength === null) {
    await task.setLayout(total, pieceLength);
    await hooks.layout({ contentLength: total });
  }
}

/** Pieces finished (their last writes and verification) at once before the origin is paused. */
const MAX_FINISHING = 2;

/**
 * Cuts the origin's body into pieces as it arrives: each chunk goes to the writer of
 * its piece (pieces already stored are skipped), a finished piece is verified and
 * reported while the next one arrives. Resolves with the offset reached.
 */
function cutIntoPieces(body: Readable, task: StoredTask, start: number, hooks: SourceHooks, signal: AbortSignal): Promise<number> {
  const pieceLength = task.meta.pieceLength!;
  return new Promise((resolve, reject) => {
    let offset = start;
    let writer: PieceWriter | "skip" | undefined;
    let commits: Promise<void> = Promise.resolve();
    let finishing = 0;
    let waitingForDisk = false;
    let failed = false;
    const resume = () => {
      if (!failed && !waitingForDisk && finishing < MAX_FINISHING) body.resume();
    };
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      signal.removeEventListener("abort", onAbort);
      body.off("data", onData);
      body.destroy();
      const current = writer instanceof PieceWriter ? writer.abort() : undefined;
      void Promise.allSettled([current, commits]).then(() => reject(originError(err, offset)));
    };
    const onAbort = () => fail(new KilnError("INTERNAL", "download cancelled"));
    const finish = (w: PieceWriter) => {
      const written = w.end();
      finishing++;
      commits = commits.then(async () => {
        const info = task.commitPiece(w.piece, await written, hooks.known(w.piece));
        finishing--;
        resume();
        hooks.piece(info);
      });
      commits.catch(fail);
    };
    const onData = (data: Buffer) => {
      try {
        let more = true;
        for (let chunk = data; chunk.length; ) {
          const n = Math.floor(offset / pieceLength);
          writer ??= task.hasPiece(n) ? "skip" : task.pieceWriter(n, hooks.known(n));
          const take = Math.min(chunk.length, (n + 1) * pieceLength - offset);
          if (writer !== "skip") more = writer.write(chunk.subarray(0, take)) && more;
          offset += take;
          chunk = chunk.subarray(take);
          if (offset % pieceLength !== 0) continue;
          if (writer !== "skip") finish(writer);
          writer = undefined;
        }
        if (!more && writer instanceof PieceWriter) {
          waitingForDisk = true;
          void writer.drained().then(() => {
            waitingForDisk = false;
            resume();
          });
        }
        if (waitingForDisk || finishing >= MAX_FINISHING) body.pause();
      } catch (err) {
        fail(err);
      }
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort);
    body.on("data", onData);
    finished(body, (err) => {
      if (failed) return;
      if (err) return fail(err);
      signal.removeEventListener("abort", onAbort);
      if (writer instanceof PieceWriter) finish(writer);
      writer = undefined;
      commits.then(() => resolve(offset), fail);
    });
  });
}

function originError(err: unknown, offset: number): unknown {
  if (err instanceof KilnError) return err;
  return new KilnError("ORIGIN_UNREACHABLE", `origin transfer broke after ${offset} bytes: ${describeNetworkError(err)}`);
}
