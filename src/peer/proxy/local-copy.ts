/**
 * `kiln get` on the peer's own host: instead of the bytes, the client is told the
 * stored content's path once the task is complete and makes its output from it (a
 * reflink, a hard link, or an in-kernel copy: cli/get-local-copy.ts), so the content
 * never crosses a second process. Offered to loopback clients only. A hard-linked
 * output is the stored file itself: the storage drops a task whose file changed
 * since it completed rather than serve it (Storage.intact).
 *
 * The answer (LOCAL_COPY_CONTENT_TYPE) reports progress while the task downloads,
 * then `ready` or `error`. The task stays pinned until the client closes the
 * connection, so garbage collection cannot remove the file before it is opened.
 */
import type { ServerResponse } from "node:http";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { PROXY } from "../../common/defaults.js";
import type { Logger } from "../../common/logger.js";
import { DRAGONFLY_HEADERS, KILN_PROXY_HEADERS, LOCAL_COPY_CONTENT_TYPE, encodeLocalCopyMessage, type LocalCopyMessage } from "../../api/proxy.js";
import type { ProxyDownload } from "./engine-port.js";

export interface LocalCopyOptions {
  log: Logger;
  /** Counts a download handed over as a path. */
  handedOver(): void;
}

export async function sendLocalCopy(res: ServerResponse, download: ProxyDownload, opts: LocalCopyOptions): Promise<void> {
  const { task } = download;
  res.setHeader(DRAGONFLY_HEADERS.taskId, download.taskId);
  // As for a streamed answer, a task that fails before its length is known gets a JSON error.
  await Promise.race([task.waitForLayout(), download.done]);
  const release = task.acquire();
  const closed = new Promise<false>((done) => res.once("close", () => done(false)));
  const length = task.meta.contentLength;
  res.writeHead(200, {
    "content-type": LOCAL_COPY_CONTENT_TYPE,
    "cache-control": "no-store",
    ...(length !== null ? { [KILN_PROXY_HEADERS.contentLength]: String(length) } : {}),
  });
  const send = (message: LocalCopyMessage) => res.write(encodeLocalCopyMessage(message));
  let reported = -1;
  const progress = () => {
    const bytes = task.bytesOnDisk;
    if (bytes !== reported) send({ type: "progress", bytes });
    reported = bytes;
  };
  progress();
  const ticker = setInterval(progress, PROXY.localCopyProgressMs);
  try {
    const finished = await Promise.race([download.done.then(() => true), closed]);
    clearInterval(ticker);
    if (!finished) return;
    const path = resolve(task.contentPath);
    const st = await stat(path, { bigint: true });
    send({ type: "ready", path, size: Number(st.size), dev: String(st.dev), ino: String(st.ino) });
    opts.handedOver();
    const hold = setTimeout(() => res.end(), PROXY.localCopyHoldMs);
    await closed;
    clearTimeout(hold);
  } catch (err) {
    clearInterval(ticker);
    const message = err instanceof Error ? err.message : String(err);
    opts.log.warn({ task: download.taskId, err: message }, "download for a local copy failed");
    if (!res.destroyed) {
      send({ type: "error", message });
      res.end();
    }
  } finally {
    release();
  }
}
