/**
 * A task's bytes in order while it downloads, as ranges of its content file that
 * are verified and stored: a reader writes each straight from the file, one block
 * at a time. With a known length the last piece is held back until the whole task
 * succeeded (blob digest included), so a reader never receives complete-looking
 * content that failed verification.
 */
import type { StoredTask } from "./stored-task.js";
import type { ByteRange } from "../../common/piece.js";

/** Yields `[start, end)` ranges covering `range` (default: the whole content) as they become readable; throws the task's failure. */
export async function* verifiedRanges(task: StoredTask, done: Promise<void>, range?: ByteRange): AsyncGenerator<ByteRange, void, undefined> {
  try {
    yield* ranges(task, done, range);
  } catch (err) {
    throw task.failure ?? err;
  }
}

async function* ranges(task: StoredTask, done: Promise<void>, range: ByteRange | undefined): AsyncGenerator<ByteRange, void, undefined> {
  await task.waitForLayout();
  for (let pos = range?.start ?? 0; ; ) {
    const pieceLength = task.meta.pieceLength;
    const end = Math.min(range?.end ?? Infinity, task.meta.contentLength ?? Infinity);
    if (pieceLength === null || pos >= end) break;
    const n = Math.floor(pos / pieceLength);
    const finished = await Promise.race([task.waitForPiece(n).then(() => false), done.then(() => true)]);
    if (finished && !task.hasPiece(n)) break;
    const total = task.totalPieces;
    const pieceEnd = n * pieceLength + task.piece(n)!.length;
    const stop = Math.min(pieceEnd, end);
    // The last piece waits for the whole task to be verified.
    if ((total !== null && n === total - 1) || pieceEnd >= end) await done;
    task.touch();
    yield { start: pos, end: stop };
    pos = stop;
  }
  await done;
}
