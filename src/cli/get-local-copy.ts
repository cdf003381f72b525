/**
 * `kiln get` on the peer's host: the peer downloads the task as usual and reports
 * progress, then names its stored file, which this process copies itself. The copy
 * is a reflink where the filesystem has them, else an in-kernel copy (copy_file_range):
 * never a hard link, so editing the output cannot change what the peer serves. The
 * file is created by this process, so its owner and mode are the caller's.
 */
import type http from "node:http";
import { chmod, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { decodeLocalCopyMessage, type LocalCopyMessage } from "../api/proxy.js";
import type { PendingOutput } from "./get-output.js";

export type LocalCopyResult = { copied: true; bytes: number } | { copied: false; reason: string };

type Ready = Extract<LocalCopyMessage, { type: "ready" }>;

/**
 * Follows a local-copy answer until the copy is in `output`'s temporary file.
 * Throws when the download fails; resolves `copied: false` when this process cannot
 * copy the peer's file (another mount namespace, a data directory it may not read, a
 * filesystem error), for the caller to fall back to streaming. The caller closes `res`
 * afterwards, which releases the peer's hold on the task.
 */
export async function receiveLocalCopy(res: http.IncomingMessage, output: PendingOutput, onProgress: (bytes: number) => void): Promise<LocalCopyResult> {
  try {
    for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
      const message = decodeLocalCopyMessage(line);
      if (message?.type === "progress") onProgress(message.bytes);
      else if (message?.type === "error") throw new Error(`download failed: ${message.message}`);
      // copyStoredFile does not throw; the peer holds the task until this answer is closed.
      else if (message?.type === "ready") return await copyStoredFile(message, output);
    }
  } catch (err) {
    // Node says only "aborted" when the peer's answer is cut: say whose connection broke.
    const e = err as NodeJS.ErrnoException;
    if (e.message === "aborted" || e.code === "ECONNRESET") {
      throw new Error("download failed: the connection to the peer broke before the download finished (the peer's log has the reason)");
    }
    throw err;
  }
  throw new Error("download failed: the peer closed the connection before the download finished");
}

async function copyStoredFile(ready: Ready, output: PendingOutput): Promise<LocalCopyResult> {
  try {
    const source = await stat(ready.path, { bigint: true });
    if (source.dev !== BigInt(ready.dev) || source.ino !== BigInt(ready.ino) || source.size !== BigInt(ready.size)) {
      return { copied: false, reason: `${ready.path} here is not the peer's file` };
    }
    const mode = await output.create();
    await output.copyFrom(ready.path);
    // copyFile gives the copy its source's mode; the output keeps the one a new file of this user gets.
    await chmod(output.tmp, mode);
    return { copied: true, bytes: ready.size };
  } catch (err) {
    await output.discard();
    return { copied: false, reason: (err as Error).message };
  }
}
