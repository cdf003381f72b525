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
  const fh = await open(path, "r");
  const blocks = [take(), take()];
  let closed!: (err: Error) => void;
  const gone = new Promise<never>((_, reject) => (closed = reject));
  gone.catch(() => undefined);
  const onClose = () => closed(new Error("client closed the connection"));
  res.once("close", onClose);
  let writing: Promise<void> = Promise.resolve();
  try {
    for (let pos = start, i = 0; pos < end; i++) {
      const block = blocks[i % 2]!;
      const { bytesRead } = await fh.read(block, 0, Math.min(BLOCK, end - pos), pos);
      if (bytesRead === 0) throw new Error(`file ends at ${pos}, before ${end}`);
      // The other block's write must be done before this one's goes out (and before that block is read into again).
      await Promise.race([writing, gone]);
      await beforeWrite(bytesRead);
      writing = write(res, block.subarray(0, bytesRead));
      pos += bytesRead;
    }
    await Promise.race([writing, gone]);
    await new Promise<void>((resolve) => res.end(resolve));
  } finally {
    res.off("close", onClose);
    // Blocks go back to the pool only once no write of them is pending (a cut connection may never complete one).
    void writing.then(
      () => blocks.forEach(give),
      () => undefined,
    );
    await fh.close();
  }
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve())));
}
