/** A test origin: serves in-memory files, counts the bytes it sends, and misbehaves on request. */
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";

export interface OriginFile {
  data: Buffer;
  sha256: string;
}

export function makeFile(size: number): OriginFile {
  const data = randomBytes(size);
  return { data, sha256: createHash("sha256").update(data).digest("hex") };
}

export interface TestOrigin {
  url: string;
  port: number;
  /** Body bytes sent, per path. */
  sent: Map<string, number>;
  requests: { path: string; headers: http.IncomingHttpHeaders }[];
  totalSent(): number;
  add(path: string, file: OriginFile): void;
  /** `path` answers 307 to `target` with a fresh S3-style `Expires`/`Signature` query each time, like a registry in front of object storage. */
  redirect(path: string, target: string): void;
  /**
   * The next response for `path` stops after sending its first `bytes` bytes, with the
   * connection open, until the returned release is called (or the client goes away).
   */
  hold(path: string, bytes: number): () => void;
  close(): Promise<void>;
}

export interface OriginOptions {
  /** Bytes per second per response; 0 = unlimited. */
  rateBytes?: number;
  /** The first bytes of each response that go out at full speed before `rateBytes` applies (a task that stays in progress). */
  fastBytes?: number;
  /** Each file gets a strong ETag (from its digest); a Range whose If-Range names another is answered with the whole file. */
  etags?: boolean;
}

/** The ETag a file is served with under `etags`. */
export const etagOf = (file: OriginFile): string => `"${file.sha256.slice(0, 16)}"`;

/**
 * Paths: anything added with `add` or `redirect`; `/status/<code>` answers that status;
 * `/reset/<path>` sends half of <path> then resets the connection.
 */
export async function startOrigin(opts: OriginOptions = {}): Promise<TestOrigin> {
  const files = new Map<string, OriginFile>();
  const redirects = new Map<string, string>();
  const sent = new Map<string, number>();
  const requests: TestOrigin["requests"] = [];
  const holds = new Map<string, { bytes: number; released: Promise<void> }>();
  const server = http.createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    requests.push({ path, headers: req.headers });
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) return void res.writeHead(Number(status[1])).end(`status ${status[1]}`);
    const target = redirects.get(path);
    if (target) {
      const signed = `${target}?Expires=${Math.floor(Date.now() / 1000) + 600}&Signature=${randomBytes(12).toString("hex")}`;
      return void res.writeHead(307, { location: signed }).end();
    }
    const reset = path.startsWith("/reset/");
    const file = files.get(reset ? path.slice("/reset".length) : path);
    if (!file) return void res.writeHead(404).end("not found");
    let start = 0;
    let end = file.data.length;
    const etag = opts.etags ? { etag: etagOf(file) } : {};
    const ifRange = req.headers["if-range"];
    const range = opts.etags && ifRange && ifRange !== etag.etag ? null : /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const hold = holds.get(path);
    holds.delete(path);
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Number(range[2]) + 1 : end;
      res.writeHead(206, {
        "content-length": end - start,
        "content-range": `bytes ${start}-${end - 1}/${file.data.length}`,
        "accept-ranges": "bytes",
        ...etag,
      });
    } else {
      res.writeHead(200, { "content-length": end - start, "accept-ranges": "bytes", ...etag });
    }
    const limit = reset ? start + Math.floor((end - start) / 2) : end;
    const chunk = 256 * 1024;
    for (let off = start; off < limit; ) {
      const holdAt = hold ? start + hold.bytes : limit;
      if (hold && off === holdAt) {
        await Promise.race([hold.released, new Promise((r) => res.once("close", r))]);
        if (res.destroyed) return;
      }
      const piece = file.data.subarray(off, Math.min(off < holdAt ? holdAt : limit, limit, off + chunk));
      sent.set(path, (sent.get(path) ?? 0) + piece.length);
      if (!res.write(piece)) await new Promise((r) => res.once("drain", r));
      if (opts.rateBytes && off + piece.length >= (opts.fastBytes ?? 0)) await new Promise((r) => setTimeout(r, (piece.length / opts.rateBytes!) * 1000));
      if (res.destroyed) return;
      off += piece.length;
    }
    if (reset) return void req.socket.resetAndDestroy();
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    sent,
    requests,
    totalSent: () => [...sent.values()].reduce((a, b) => a + b, 0),
    add: (path, file) => void files.set(path, file),
    redirect: (path, target) => void redirects.set(path, target),
    hold: (path, bytes) => {
      let release!: () => void;
      holds.set(path, { bytes, released: new Promise<void>((r) => (release = r)) });
      return () => release();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
