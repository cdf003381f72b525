/**
 * Sends a byte range of a file to an HTTP response: one `pread` and one socket
 * write per MiB, the next read overlapping the previous write, into blocks reused
 * across uploads (see blocks.ts).
 */
import { open } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { BLOCK_SIZE as BLOCK, giveBlock as give, takeBlock as take } from "../blocks.js";

/**
 * Writes `[start, end)` of `path` to `res` and ends it. `beforeWrite` runs before each
 * block goes out (the upload's rate limit, its byte counter). Rejects if the file is
 * shorter or the client goes away; a block is reused only after its write completed.
 */
export async function sendFile(
  path: string,
  start: number,
  end: number,
  res: ServerResponse,
  beforeWrite: (bytes: number) => Promise<void> | void,
): Promise<void> {
  const client = whenClosed(res);
  let writing: Promise<void> = Promise.resolve();
  let blocks: Buffer[] = [];
  try {
    const fh = await open(path, "r");
    blocks = [take(), take()];
    try {
      for (let pos = start, i = 0; pos < end; i++) {
        const block = blocks[i % 2]!;
        const { bytesRead } = await fh.read(block, 0, Math.min(BLOCK, end - pos), pos);
        if (bytesRead === 0) throw new Error(`file ends at ${pos}, before ${end}`);
        // The other block's write must be done before this one's goes out (and before that block is read into again).
        await Promise.race([writing, client.gone]);
        await beforeWrite(bytesRead);
        writing = write(res, block.subarray(0, bytesRead));
        // Awaited only after the next read: a client that resets meanwhile fails it with nobody listening yet.
        writing.catch(() => undefined);
        pos += bytesRead;
      }
      await Promise.race([writing, client.gone]);
      // A connection cut now never emits 'finish': without the race the upload (and its slot) would wait for good.
      await Promise.race([new Promise<void>((resolve) => res.end(resolve)), client.gone]);
    } finally {
      await fh.close();
    }
  } finally {
    client.stop();
    // Blocks go back to the pool only once no write of them is pending (a cut connection may never complete one).
    const taken = blocks;
    void writing.then(
      () => taken.forEach(give),
      () => undefined,
    );
  }
}

/** Rejects once `res` closes (at once if it already has); `stop` removes the listener. */
function whenClosed(res: ServerResponse): { gone: Promise<never>; stop: () => void } {
  let onClose!: () => void;
  const gone = new Promise<never>((_, reject) => (onClose = () => reject(new Error("client closed the connection"))));
  gone.catch(() => undefined);
  if (res.destroyed) onClose();
  else res.once("close", onClose);
  return { gone, stop: () => res.off("close", onClose) };
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve())));
}
