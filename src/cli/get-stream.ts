/** `kiln get` receiving the content over the connection (the peer is on another host, or a local copy could not be made). */
import type http from "node:http";
import { pipeline } from "node:stream/promises";
import { KILN_PROXY_HEADERS, decodeResult } from "../api/proxy.js";
import { announcedLength } from "./get-peer.js";
import type { PendingOutput } from "./get-output.js";

/** Writes the body into `output`'s temporary file; resolves to its size once the peer's trailer says it is complete and verified. */
export async function receiveStream(res: http.IncomingMessage, output: PendingOutput, onProgress: (bytes: number) => void): Promise<number> {
  const total = announcedLength(res);
  let received = 0;
  res.on("data", (chunk: Buffer) => {
    received += chunk.length;
    onProgress(received);
  });
  try {
    await pipeline(res, output.writeStream());
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET") throw new Error("download failed: the peer closed the stream before the end");
    throw err;
  }
  const result = decodeResult(res.trailers[KILN_PROXY_HEADERS.result]);
  if (!result.ok) throw new Error(`download failed: ${result.message}`);
  if (total !== undefined && received !== total) throw new Error(`download incomplete: got ${received} of ${total} bytes`);
  return received;
}
