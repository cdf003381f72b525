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
import type { DownloadSpec, OriginAccess } from "../../api/common.js";
import type { PieceInfo } from "../../api/scheduler.js";
import type { StoredTask } from "../storage/stored-task.js";
import { PieceWriter } from "../storage/piece-writer.js";
import { fetchOrigin, type OriginResponse } from "./origin.js";
import { accessAsRequested, probeOriginAccess } from "./origin-access.js";
import type { Layout } from "./reporter.js";

/** Where back-to-source bytes come from (the origin over HTTP; a fake in tests). */
export interface OriginSource {
  open(url: string, headers: Record<string, string>, opts: { from: number; ifRange?: string }): Promise<OriginResponse<Readable>>;
  /** Who the origin serves the content of `spec` to (never rejects); without it, what the request carried decides. */
  access?(spec: DownloadSpec): Promise<OriginAccess>;
}

export interface SourceOptions {
  /** A body that sends nothing for this long while being read has stalled. */
  idleTimeoutMs: number;
  /** Range requests made to resume a body that ended early or stalled. */
  resumes: number;
  /** The version the task's pieces so far came from (the scheduler's record of the first origin fetch; else the task's own, kept across a restart). */
  validator?: string;
}

export const httpOrigin: OriginSource = { open: (url, headers, opts) => fetchOrigin(url, headers, opts), access: probeOriginAccess };

export interface SourceHooks {
  /** The layout is fixed (content length null while the origin does not say), with the origin's validator when it gave one, and who it serves the content to. */
  layout(layout: Layout): Promise<void>;
  /** A piece is verified and stored. */
  piece(info: PieceInfo): void;
  /** The canonical digest of piece `n`, when the scheduler knows one. */
  known(n: number): PieceInfo | undefined;
}

/**
 * Fetches what the task lacks from the origin; resolves when the body is stored, or at
 * once if `signal` aborts. A body that ends early or stalls is resumed from its first
 * missing piece with a Range request carrying If-Range (the first answer's ETag or
 * Last-Modified) up to `opts.resumes` times. An origin that answers a resume with
 * other content (a 200, or a range not where it was asked) fails the task: pieces of
 * two versions are never put together. A download cut short by a restart resumes the
 * same way, from the pieces it kept, against the version it recorded with them.
 */
export async function backToSource(
  origin: OriginSource,
  spec: DownloadSpec,
  task: StoredTask,
  hooks: SourceHooks,
  signal: AbortSignal,
  log: Logger,
  opts: SourceOptions,
): Promise<void> {
  let validator = opts.validator ?? task.meta.validator ?? undefined;
  // Asked beside the first request; known before the layout is, so nothing is served before it is.
  const access = task.meta.access ? undefined : (origin.access?.(spec) ?? Promise.resolve(accessAsRequested(spec)));
  for (let attempt = 0; ; attempt++) {
    const from = firstMissingByte(task);
    if (from === null) return;
    if (attempt === 0) log.info({ url: redact(spec.url), from }, "fetching from the origin");
    const res = await origin.open(spec.url, spec.headers, { from, ...(validator ? { ifRange: validator } : {}) });
    // Bytes from here on must be the same version as the pieces before: checked on every
    // resume, and on a first request from the middle when the version is known.
    const changed = res.offset !== from || (validator !== undefined && res.validator !== null && res.validator !== validator);
    if (from > 0 && (attempt > 0 || validator !== undefined) && changed) {
      res.body.destroy();
      const asked = validator ? ` with If-Range ${validator}` : " (the origin gave no ETag or Last-Modified to resume against)";
      const got = res.validator ? ` (version ${res.validator})` : "";
      throw new KilnError(
        "ORIGIN_STATUS",
        `origin content changed during the download: asked to resume at byte ${from}${asked}, it answered from byte ${res.offset}${got}`,
        502,
      );
    }
    validator ??= res.validator ?? undefined;
    // Saved with the pieces, so a restarted peer resumes against this version.
    task.meta.validator = validator ?? null;
    if (access) task.meta.access ??= await access;
    try {
      await fetchBody(res, task, spec.pieceLength, hooks, signal, opts.idleTimeoutMs);
      return;
    } catch (err) {
      const resumable = err instanceof KilnError && err.code === "ORIGIN_UNREACHABLE" && !signal.aborted;
      if (!resumable) throw err;
      if (attempt >= opts.resumes) throw new KilnError("ORIGIN_UNREACHABLE", `${err.message} (gave up after ${opts.resumes} resumes)`);
      log.warn({ url: redact(spec.url), err: err.message, attempt: attempt + 1 }, "origin body broke off; resuming with a Range request");
    }
  }
}

/** The offset of the first piece the task lacks (0 before its layout is known), or null when it lacks none. */
function firstMissingByte(task: StoredTask): number | null {
  const meta = task.meta;
  if (meta.pieceLength === null) return 0;
  let first = 0;
  while (task.hasPiece(first)) first++;
  const from = first * meta.pieceLength;
  return meta.contentLength !== null && from >= meta.contentLength ? null : from;
}

/** Stores one origin answer's body as pieces; fails when it ends before its length or stalls. */
async function fetchBody(
  res: OriginResponse<Readable>,
  task: StoredTask,
  explicitPieceLength: number | undefined,
  hooks: SourceHooks,
  signal: AbortSignal,
  idleTimeoutMs: number,
): Promise<void> {
  const meta = task.meta;
  const pieceLength = meta.pieceLength ?? explicitPieceLength ?? defaultPieceLength(res.contentLength ?? undefined);
  try {
    if (res.offset % pieceLength !== 0) {
      throw new KilnError("ORIGIN_STATUS", `origin answered a range starting at ${res.offset}, not a piece boundary`, 502);
    }
    await task.setLayout(res.contentLength, pieceLength);
    const access = meta.access ? { access: meta.access } : {};
    await hooks.layout({ contentLength: res.contentLength, pieceLength, ...(res.validator ? { validator: res.validator } : {}), ...access });
  } catch (err) {
    res.body.destroy();
    throw err;
  }
  const total = await cutIntoPieces(res.body, task, res.offset, hooks, signal, { idleTimeoutMs, expected: res.contentLength });
  if (res.contentLength !== null && total !== res.contentLength) {
    throw new KilnError("ORIGIN_UNREACHABLE", `origin closed after ${total} of ${res.contentLength} bytes`);
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
function cutIntoPieces(
  body: Readable,
  task: StoredTask,
  start: number,
  hooks: SourceHooks,
  signal: AbortSignal,
  limits: { idleTimeoutMs: number; expected: number | null },
): Promise<number> {
  const pieceLength = task.meta.pieceLength!;
  const ofTotal = () => (limits.expected !== null ? ` of ${limits.expected}` : "");
  return new Promise((resolve, reject) => {
    let offset = start;
    // The stall timer runs only while kiln reads: a body paused for the disk is not idle.
    // Called on every chunk, so a running timer is refreshed, not replaced by a new one.
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (failed || body.isPaused()) {
        clearTimeout(idle);
        idle = undefined;
        return;
      }
      if (idle) {
        idle.refresh();
        return;
      }
      idle = setTimeout(() => {
        const seconds = Math.round(limits.idleTimeoutMs / 100) / 10;
        fail(new KilnError("ORIGIN_UNREACHABLE", `origin sent nothing for ${seconds} s after ${offset}${ofTotal()} bytes`));
      }, limits.idleTimeoutMs);
    };
    let writer: PieceWriter | "skip" | undefined;
    let commits: Promise<void> = Promise.resolve();
    let finishing = 0;
    let waitingForDisk = false;
    let failed = false;
    const resume = () => {
      if (!failed && !waitingForDisk && finishing < MAX_FINISHING) body.resume();
      armIdle();
    };
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      clearTimeout(idle);
      signal.removeEventListener("abort", onAbort);
      body.off("data", onData);
      body.destroy();
      const current = writer instanceof PieceWriter ? writer.abort() : undefined;
      void Promise.allSettled([current, commits]).then(() => reject(originError(err, `${offset}${ofTotal()}`)));
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
        armIdle();
      } catch (err) {
        fail(err);
      }
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort);
    body.on("data", onData);
    armIdle();
    finished(body, (err) => {
      clearTimeout(idle);
      if (failed) return;
      if (err) return fail(err);
      signal.removeEventListener("abort", onAbort);
      if (writer instanceof PieceWriter) finish(writer);
      writer = undefined;
      commits.then(() => resolve(offset), fail);
    });
  });
}

function originError(err: unknown, reached: string): unknown {
  if (err instanceof KilnError) return err;
  return new KilnError("ORIGIN_UNREACHABLE", `origin closed after ${reached} bytes (${describeNetworkError(err)})`);
}
