/**
 * A client that walks away in the middle of an answer: it sends a request, reads the
 * answer up to a stage (headers in, a few body bytes, half the body, past the first
 * 1 MiB block) and then cuts the connection, with an RST or by closing with bytes
 * still unread (which the kernel also turns into an RST).
 */
import net from "node:net";

export const CUT_STAGES = ["headers", "first-bytes", "mid-body", "between-blocks"] as const;
export type CutStage = (typeof CUT_STAGES)[number];

export const CUT_WAYS = ["reset", "close-unread"] as const;
export type CutWay = (typeof CUT_WAYS)[number];

/** The upload and proxy paths send files in blocks of this size. */
const BLOCK = 1024 * 1024;
/** An answer that sends nothing for this long is waiting for content still on its way (an in-progress task): cut it there. */
const IDLE_MS = 300;
/** How long the headers may take (a proxy asks its scheduler first) before the connection is cut anyway. */
const HEAD_WAIT_MS = 5000;

export interface CutResult {
  /** The status line, when the headers arrived. */
  status: string | undefined;
  /** Bytes received, headers included. */
  received: number;
}

/** Where, in bytes of the whole answer, `stage` is; `bodyLength` undefined when the answer does not say. */
function cutPoint(stage: CutStage, headerBytes: number, bodyLength: number | undefined): number {
  const body = bodyLength ?? Number.POSITIVE_INFINITY;
  switch (stage) {
    case "headers":
      return headerBytes;
    case "first-bytes":
      return headerBytes + Math.min(16, body);
    case "mid-body":
      return headerBytes + Math.min(Math.floor(body / 2), 2 * BLOCK);
    case "between-blocks":
      return headerBytes + (body > BLOCK + 16 ? BLOCK + 16 : Math.max(0, body - 1));
  }
}

/** Sends `request` to `port` and cuts the connection at `stage` of the answer, the way `way` says. */
export function cutAnswer(port: number, request: string, stage: CutStage, way: CutWay): Promise<CutResult> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let head = Buffer.alloc(0);
    let headerBytes: number | undefined;
    let status: string | undefined;
    let cutAt = Number.POSITIVE_INFINITY;
    let received = 0;
    let idle: NodeJS.Timeout | undefined;
    const cut = () => {
      clearTimeout(idle);
      if (socket.destroyed) return;
      if (way === "reset") return void socket.resetAndDestroy();
      socket.pause();
      socket.destroy();
    };
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(idle);
      resolve({ status, received });
    });
    socket.on("connect", () => {
      socket.write(request);
      idle = setTimeout(cut, HEAD_WAIT_MS);
    });
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      clearTimeout(idle);
      idle = setTimeout(cut, IDLE_MS);
      if (headerBytes === undefined) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        headerBytes = end + 4;
        const text = head.subarray(0, end).toString("latin1");
        status = text.split("\r\n")[0];
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1];
        cutAt = cutPoint(stage, headerBytes, length === undefined ? undefined : Number(length));
      }
      // A chunked answer without a length is whole at its last chunk.
      const ended = chunk.subarray(-5).toString("latin1") === "0\r\n\r\n";
      if (received >= cutAt || ended) cut();
    });
  });
}
