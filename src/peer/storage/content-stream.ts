/**
 * Streams a task's bytes in order while it downloads. With a known length the
 * last bytes are held back until the whole task succeeded (blob digest included),
 * so a reader never receives complete-looking content that failed verification.
 */
import { Readable } from "node:stream";
import type { StoredTask } from "./stored-task.js";

export interface ByteRange {
  start: number;
  /** Exclusive. */
  end: number;
}

export function contentStream(task: StoredTask, done: Promise<void>, range?: ByteRange): Readable {
  async function* bytes(): AsyncGenerator<Buffer> {
    const release = task.acquire();
    try {
      await task.waitForLayout();
      const pieceLength = task.meta.pieceLength;
      if (pieceLength === null) {
        await done;
        return;
      }
      const start = range?.start ?? 0;
      for (let n = Math.floor(start / pieceLength); ; n++) {
        const finished = await Promise.race([task.waitForPiece(n).then(() => false), done.then(() => true)]);
        if (finished && !task.hasPiece(n)) break;
        const total = task.totalPieces;
        const length = task.meta.contentLength;
        const end = Math.min(range?.end ?? Infinity, length ?? Infinity);
        const pieceStart = n * pieceLength;
        const pieceEnd = pieceStart + task.piece(n)!.length;
        const isLast = (total !== null && n === total - 1) || pieceEnd >= end;
        if (isLast) await done;
        try {
          for await (const chunk of task.read(Math.max(start, pieceStart), Math.min(pieceEnd, end))) yield chunk as Buffer;
        } catch (err) {
          // A failed task's file is removed: the reader learns why it failed, not that a file vanished.
          throw task.failure ?? err;
        }
        task.touch();
        if (isLast) break;
      }
      await done;
    } finally {
      release();
    }
  }
  return Readable.from(bytes(), { objectMode: false });
}
