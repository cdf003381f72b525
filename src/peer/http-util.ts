/** Small helpers for the peer's node:http servers (no framework on the byte path). */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { z } from "zod";
import { KilnError } from "../common/errors.js";
import { headerEncode } from "../common/headers.js";

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers }).end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = err instanceof KilnError ? err : new KilnError("INTERNAL", "internal error");
  sendJson(res, e.status, { message: e.message, code: e.code }, { "x-kiln-error": headerEncode(e.message).slice(0, 1000) });
}

/** Reads and validates a JSON body (at most `limit` bytes). */
export async function readJson<S extends z.ZodType>(req: IncomingMessage, schema: S, limit = 1024 * 1024): Promise<z.infer<S>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new KilnError("BAD_REQUEST", `body larger than ${limit} bytes`, 413);
    chunks.push(chunk);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (err) {
    throw new KilnError("BAD_REQUEST", `malformed JSON body: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new KilnError("BAD_REQUEST", `${first?.path.join(".") || "body"}: ${first?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/**
 * A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range against `length` (RFC 9110 §14.2):
 * `undefined` = serve the whole body (no header, or one that is not a valid single byte
 * range — another unit, several ranges, `5-1` — which a server ignores), `"invalid"` = 416
 * (a valid range that asks for nothing inside the body).
 */
export function parseRange(header: string | undefined, length: number): { start: number; end: number } | undefined | "invalid" {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] !== "" && m[2] !== "" && Number(m[2]) < Number(m[1])) return undefined;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    start = Math.max(0, length - suffix);
    end = length;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? length : Math.min(length, Number(m[2]) + 1);
  }
  if (start >= length || start >= end) return "invalid";
  return { start, end };
}

/**
 * Requests a server refuses before any handler sees them, with a JSON body like every
 * other error: malformed ones (Node's parser; smuggling attempts among them) and ones
 * whose target is ambiguous (more than one Host header).
 */
function guardRequests(server: Server): void {
  if (server.listenerCount("clientError") === 0) {
    server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable || err.code === "ECONNRESET") return void socket.destroy();
      const body = JSON.stringify({ message: `malformed HTTP request: ${err.code ?? err.message}`, code: "BAD_REQUEST" });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  }
  const handlers = server.listeners("request") as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners("request");
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if ((req.headersDistinct.host?.length ?? 0) > 1) {
      res.shouldKeepAlive = false;
      return sendError(res, new KilnError("BAD_REQUEST", "more than one Host header"));
    }
    for (const h of handlers) h(req, res);
  });
}

/** Listens and resolves with the bound port (port 0 picks a free one). */
export function listenHttp(server: Server, host: string, port: number): Promise<number> {
  guardRequests(server);
  return new Promise((resolve, reject) => {
    server.once("error", reject).listen(port, host, () => {
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
}

/** Closes the server, cutting idle and in-flight connections. */
export function closeHttp(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
