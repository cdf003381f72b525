/**
 * `kiln get` on the peer's host: the peer downloads the task as usual and reports
 * progress, then names its stored file, which this process turns into the output
 * without a second stream. In order: a reflink where the filesystem has them (a copy
 * of the caller's own that shares blocks); else a hard link to the stored file, as
 * Dragonfly's dfget does (no byte copied; the output is the peer's file, so the peer
 * checks the file is unchanged before it serves it again, and drops it if it was
 * edited); else, or with `hardLink: false`, an in-kernel copy (copy_file_range).
 */
import type http from "node:http";
import { chmod, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { decodeLocalCopyMessage, type LocalCopyMessage } from "../api/proxy.js";
import type { PendingOutput } from "./get-output.js";

/** How the output was made from the peer's stored file. */
export type LocalCopyHow = "reflink" | "hard link" | "copy";
export type LocalCopyResult = { copied: true; bytes: number; how: LocalCopyHow } | { copied: false; reason: string };

type Ready = Extract<LocalCopyMessage, { type: "ready" }>;

/**
 * Follows a local-copy answer until the copy is in `output`'s temporary file.
 * Throws when the download fails; resolves `copied: false` when this process cannot
 * copy the peer's file (another mount namespace, a data directory it may not read, a
 * filesystem error), for the caller to fall back to streaming. The caller closes `res`
 * afterwards, which releases the peer's hold on the task.
 */
export async function receiveLocalCopy(
  res: http.IncomingMessage,
  output: PendingOutput,
  opts: { hardLink: boolean; onProgress: (bytes: number) => void },
): Promise<LocalCopyResult> {
  try {
    for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
      const message = decodeLocalCopyMessage(line);
      if (message?.type === "progress") opts.onProgress(message.bytes);
      else if (message?.type === "error") throw new Error(`download failed: ${message.message}`);
      // copyStoredFile does not throw; the peer holds the task until this answer is closed.
      else if (message?.type === "ready") return await copyStoredFile(message, output, opts.hardLink);
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

async function copyStoredFile(ready: Ready, output: PendingOutput, hardLink: boolean): Promise<LocalCopyResult> {
  try {
    const source = await stat(ready.path, { bigint: true });
    if (source.dev !== BigInt(ready.dev) || source.ino !== BigInt(ready.ino) || source.size !== BigInt(ready.size)) {
      return { copied: false, reason: `${ready.path} here is not the peer's file` };
    }
    // The mode a new file of this user gets; a reflink or copy takes its source's, so it is set after.
    const mode = await output.create();
    await output.discard();
    const how = await makeOutput(ready.path, output, hardLink);
    if (how !== "hard link") await chmod(output.tmp, mode);
    return { copied: true, bytes: ready.size, how };
  } catch (err) {
    await output.discard();
    return { copied: false, reason: (err as Error).message };
  }
}

/** The cheapest way this filesystem allows (see the top of this file); throws when not even a copy can be made. */
async function makeOutput(source: string, output: PendingOutput, hardLink: boolean): Promise<LocalCopyHow> {
  try {
    await output.cloneFrom(source);
    return "reflink";
  } catch {
    await output.discard();
  }
  if (hardLink) {
    try {
      await output.linkFrom(source);
      return "hard link";
    } catch {
      // Another filesystem, or a file this user may not link (fs.protected_hardlinks): copy it.
    }
  }
  await output.copyFrom(source);
  return "copy";
}
