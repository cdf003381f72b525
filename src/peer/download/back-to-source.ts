/**
 * Back-to-source: one GET to the origin from the first missing piece on, cut into
 * pieces as the bytes arrive. Each piece is hashed and stored; where the scheduler
 * already knows its digest it must match. This peer's digests become canonical.
 */
import type { Readable } from "node:stream";
import { KilnError, describeNetworkError } from "../../common/errors.js";
import { defaultPieceLength } from "../../common/piece.js";
import { redact } from "../../common/redact.js";
import type { Logger } from "../../common/logger.js";
import type { DownloadSpec } from "../../api/common.js";
import type { PieceInfo } from "../../api/scheduler.js";
import type { StoredTask } from "../storage/stored-task.js";
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
  await task.setLayout(res.contentLength, pieceLength);
  await hooks.layout({ contentLength: res.contentLength, pieceLength });

  let offset = res.offset;
  if (offset % pieceLength !== 0) throw new KilnError("ORIGIN_STATUS", `origin answered a range starting at ${offset}, not a piece boundary`, 502);
  let chunks: Buffer[] = [];
  let buffered = 0;
  const writeBuffered = async () => {
    const n = Math.floor(offset / pieceLength);
    if (!task.hasPiece(n)) hooks.piece(await task.writePiece(n, iterate(chunks), hooks.known(n)));
    offset += buffered;
    chunks = [];
    buffered = 0;
  };
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (signal.aborted) {
        res.body.destroy();
        return;
      }
      let rest = chunk;
      while (rest.length) {
        const take = Math.min(rest.length, pieceLength - buffered);
        chunks.push(rest.subarray(0, take));
        buffered += take;
        rest = rest.subarray(take);
        if (buffered === pieceLength) await writeBuffered();
      }
    }
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError("ORIGIN_UNREACHABLE", `origin transfer broke after ${offset + buffered} bytes: ${describeNetworkError(err)}`);
  }
  if (buffered > 0) await writeBuffered();
  const total = offset;
  if (res.contentLength !== null && total !== res.contentLength) {
    throw new KilnError("ORIGIN_UNREACHABLE", `origin closed the connection after ${total} of ${res.contentLength} bytes`);
  }
  if (meta.contentLength === null) {
    await task.setLayout(total, pieceLength);
    await hooks.layout({ contentLength: total });
  }
}

async function* iterate(chunks: Buffer[]): AsyncIterable<Buffer> {
  yield* chunks;
}
