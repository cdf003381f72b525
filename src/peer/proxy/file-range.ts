/**
 * Writes byte ranges of a stored file to an HTTP response through one block per
 * response: the block is read into again only once the socket has taken its last
 * write. A client that reads slowly holds that block and nothing more (no read-ahead,
 * no queue), and a fast one costs no allocation per block.
 */
import type { FileHandle } from "node:fs/promises";
import type { Writable } from "node:stream";

/** The error a write loop ends with when the client closes the connection first. */
export class ClientGoneError extends Error {
  readonly code = "ERR_STREAM_PREMATURE_CLOSE";

  constructor() {
    super("the client closed the connection");
  }
}

/** Rejects with ClientGoneError once `out` closes; `stop` removes the listener. */
export function whenGone(out: Writable): { gone: Promise<never>; stop: () => void } {
  let onClose!: () => void;
  const gone = new Promise<never>((_, reject) => (onClose = () => reject(new ClientGoneError())));
  gone.catch(() => undefined);
  out.once("close", onClose);
  return { gone, stop: () => out.off("close", onClose) };
}

/**
 * Writes `[start, end)` of `file` to `out` through `block` (read into again only once
 * the socket took the last write; `out` is not ended); `written` counts the bytes the
 * socket took. Rejects when the file is shorter than `end`, or with ClientGoneError
 * when `out` closes first.
 */
export async function writeFileRange(
  out: Writable,
  file: FileHandle,
  start: number,
  end: number,
  block: Buffer,
  written: (bytes: number) => void,
): Promise<void> {
  if (end <= start) return;
  const { gone, stop } = whenGone(out);
  try {
    for (let pos = start; pos < end; ) {
      if (out.destroyed) throw new ClientGoneError();
      const { bytesRead } = await file.read(block, 0, Math.min(block.length, end - pos), pos);
      if (bytesRead === 0) throw new Error(`the stored file ended at byte ${pos}, before ${end}`);
      await Promise.race([write(out, block.subarray(0, bytesRead)), gone]);
      pos += bytesRead;
      written(bytesRead);
    }
  } finally {
    stop();
  }
}

function write(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => out.write(chunk, (err) => (err ? reject(err) : resolve())));
}
