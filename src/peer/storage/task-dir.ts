/** A task directory read back from disk: its metadata checked against its content file. */
import { createHash } from "node:crypto";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { pieceRange } from "../../common/piece.js";
import { CONTENT_FILE, META_FILE } from "./stored-task.js";
import { TaskMeta } from "./task-meta.js";

/** The metadata as written, unchecked against the content. */
export async function readMeta(dir: string): Promise<TaskMeta> {
  return TaskMeta.parse(JSON.parse(await readFile(join(dir, META_FILE), "utf8")));
}

/** Bytes of verified pieces the metadata lists. */
export function metaBytes(meta: TaskMeta): number {
  let n = 0;
  for (const p of meta.pieces) n += p.length;
  return n;
}

/**
 * The metadata of task `taskId` in `dir`, fit to use: a complete task whose content
 * has its length (and, if it may not have been flushed, still matches every digest),
 * or a download cut short with the pieces that still match theirs (a piece written
 * but not flushed before a crash is dropped, and fetched again). Throws when unusable.
 */
export async function loadTaskDir(dir: string, taskId: string): Promise<TaskMeta> {
  const meta = await readMeta(dir);
  if (meta.taskId !== taskId) throw new Error(`metadata is for task ${meta.taskId}`);
  const content = await stat(join(dir, CONTENT_FILE), { bigint: true }).catch(() => undefined);
  const size = content ? Number(content.size) : 0;
  if (meta.complete) {
    if (size !== meta.contentLength) throw new Error(`content is ${size} bytes, metadata says ${meta.contentLength}`);
    const mtimeNs = content ? String(content.mtimeNs) : null;
    if (meta.contentMtimeNs !== null && mtimeNs !== meta.contentMtimeNs) {
      throw new Error("the content file was written to after the task completed (an output hard-linked to it and edited?)");
    }
    meta.contentMtimeNs ??= mtimeNs;
    if (!meta.durable && (await piecesThatCheck(join(dir, CONTENT_FILE), meta)).length !== meta.pieces.length) {
      throw new Error("a piece no longer matches its digest (not flushed before a crash?)");
    }
    return meta;
  }
  if (meta.pieceLength === null || !meta.pieces.length) throw new Error("incomplete, with no piece verified");
  const kept = await piecesThatCheck(join(dir, CONTENT_FILE), meta);
  if (!kept.length) throw new Error("incomplete, with no piece that still matches its digest");
  return { ...meta, pieces: kept, durable: false };
}

/** The pieces the metadata lists whose bytes in the content file still have their digest and length. */
async function piecesThatCheck(path: string, meta: TaskMeta): Promise<TaskMeta["pieces"]> {
  const pieceLength = meta.pieceLength;
  if (pieceLength === null) return [];
  const fh = await open(path, "r");
  const kept: TaskMeta["pieces"] = [];
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (const p of meta.pieces) {
      const start = p.number * pieceLength;
      if (meta.contentLength !== null) {
        const want = pieceRange(p.number, meta.contentLength, pieceLength);
        if (want.end - want.start !== p.length) continue;
      }
      const hash = createHash("sha256");
      let pos = start;
      while (pos < start + p.length) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, start + p.length - pos), pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      if (pos === start + p.length && `sha256:${hash.digest("hex")}` === p.digest) kept.push(p);
    }
  } finally {
    await fh.close();
  }
  return kept;
}
