/**
 * Fetches pieces from parents' upload servers on kept-alive TCP connections. The
 * socket reads straight into 1 MiB blocks (net `onread`): each read fills the rest
 * of the current block, and the bytes go to the piece's sink where they lie, so a
 * received byte is copied by the kernel once and never again in user space, with no
 * allocation or stream machinery per chunk. It speaks the HTTP/1.1 kiln's upload
 * server answers with: a GET, then a status line, headers and a Content-Length body.
 */
import net from "node:net";
import { describeNetworkError } from "../../common/errors.js";
import { PEER_PATHS, UPLOAD_CREDENTIAL_HEADER } from "../../api/peer.js";
import type { FailureKind, ParentInfo } from "../../api/scheduler.js";
import { BLOCK_SIZE as BLOCK, retireBlock, takeSharedBlock } from "../blocks.js";

export class PieceFetchError extends Error {
  constructor(
    readonly kind: Exclude<FailureKind, "digest_mismatch"> | "busy",
    message: string,
  ) {
    super(message);
  }
}

/** Where a piece's bytes go as they arrive; a chunk stays untouched once written. */
export interface PieceSink {
  /** False when the source should wait for `drained()`. */
  write(chunk: Buffer): boolean;
  drained(): Promise<void>;
}

/** A read into less room than this starts a new block instead. */
const MIN_READ = 64 * 1024;
const MAX_HEAD = 16 * 1024;
/** Idle connections kept per parent, and for how long (below the upload server's 30 s keep-alive). */
const IDLE_PER_PARENT = 8;
const IDLE_MS = 20_000;

/** A response being read on a connection. */
interface Exchange {
  data(bytes: Buffer): void;
  closed(err: Error | undefined): void;
}

class Connection {
  private block: Buffer | undefined;
  private fill = 0;
  exchange: Exchange | undefined;
  /** Responses completed on it: a failure on a reused connection is retried on a new one. */
  uses = 0;
  readonly socket: net.Socket;

  constructor(
    readonly key: string,
    host: string,
    port: number,
  ) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: () => {
          if (!this.block || BLOCK - this.fill < MIN_READ) {
            this.retire();
            this.block = takeSharedBlock();
            this.fill = 0;
          }
          return this.block.subarray(this.fill);
        },
        callback: (n: number) => {
          const bytes = this.block!.subarray(this.fill, this.fill + n);
          this.fill += n;
          try {
            if (this.exchange) this.exchange.data(bytes);
            else this.socket.destroy(); // bytes nobody asked for: the connection is out of step
          } catch (err) {
            // Whatever goes wrong with one response fails that fetch, never the process.
            this.socket.destroy(err as Error);
          }
          return true;
        },
      },
    });
    this.socket.on("error", (err) => this.exchange?.closed(err));
    this.socket.on("close", () => {
      this.exchange?.closed(undefined);
      dropIdle(this);
      this.retire();
    });
    this.socket.on("timeout", () => {
      if (this.exchange) this.exchange.closed(Object.assign(new Error("stalled"), { code: "ETIMEDOUT" }));
      this.socket.destroy();
    });
  }

  /** An idle connection keeps its block only while much of it is free (a parked block is memory no one uses). */
  park(): void {
    this.exchange = undefined;
    if (BLOCK - this.fill < BLOCK / 2) this.retire();
  }

  /** Nothing more is read into the current block: it is reused once the writes of its bytes are done. */
  private retire(): void {
    if (this.block) retireBlock(this.block);
    this.block = undefined;
  }
}

const idle = new Map<string, Connection[]>();

function dropIdle(c: Connection): void {
  const list = idle.get(c.key);
  const i = list?.indexOf(c) ?? -1;
  if (i >= 0) list!.splice(i, 1);
  if (list?.length === 0) idle.delete(c.key);
}

function release(c: Connection): void {
  c.park();
  const list = idle.get(c.key) ?? [];
  if (list.length >= IDLE_PER_PARENT || c.socket.destroyed) return void c.socket.destroy();
  c.socket.setTimeout(IDLE_MS);
  list.push(c);
  idle.set(c.key, list);
}

/**
 * Streams piece `n` of `taskId` from `parent` into `sink`; resolves once the whole body
 * arrived. The transfer fails if it makes no progress for `stallMs`. `credential` is the
 * cluster's upload credential, which the parent requires.
 */
export async function fetchPieceInto(
  parent: ParentInfo,
  taskId: string,
  n: number,
  sink: PieceSink,
  stallMs: number,
  signal: AbortSignal,
  credential = "",
): Promise<void> {
  const key = `${parent.ip}:${parent.uploadPort}`;
  const reused = idle.get(key)?.pop();
  try {
    await exchange(reused ?? new Connection(key, parent.ip, parent.uploadPort), parent, taskId, n, sink, stallMs, signal, credential);
  } catch (err) {
    // The parent may have closed an idle connection just as it was reused: once more on a new one.
    if (!reused || !(err instanceof StaleConnection)) throw err;
    await exchange(new Connection(key, parent.ip, parent.uploadPort), parent, taskId, n, sink, stallMs, signal, credential);
  }
}

/** Nothing came back on a reused connection. */
class StaleConnection extends PieceFetchError {}

function exchange(
  c: Connection,
  parent: ParentInfo,
  taskId: string,
  n: number,
  sink: PieceSink,
  stallMs: number,
  signal: AbortSignal,
  credential: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let head: Buffer | undefined;
    let status = 0;
    let remaining = -1;
    let received = 0;
    let keepAlive = true;
    let error = "";
    const settle = (err?: Error) => {
      signal.removeEventListener("abort", onAbort);
      c.exchange = undefined;
      if (err) {
        c.socket.destroy();
        return reject(err);
      }
      c.uses++;
      if (keepAlive) release(c);
      else c.socket.destroy();
      if (status === 200) return resolve();
      if (status === 429) return reject(new PieceFetchError("busy", `parent ${parent.peerId} is busy`));
      reject(new PieceFetchError("http_error", `parent ${parent.peerId} answered ${status} for piece ${n}${error ? `: ${error}` : ""}`));
    };
    const onAbort = () => settle(Object.assign(new Error("piece fetch cancelled"), { name: "AbortError" }));
    const body = (bytes: Buffer) => {
      if (bytes.length > remaining) return settle(new PieceFetchError("http_error", `parent ${parent.peerId} sent more than it announced`));
      remaining -= bytes.length;
      if (status === 200) {
        let more: boolean;
        try {
          more = sink.write(bytes);
        } catch (err) {
          return settle(err as Error);
        }
        if (!more) {
          c.socket.pause();
          void sink.drained().then(() => c.exchange && c.socket.resume());
        }
      } else if (error.length < 500) {
        error += bytes.toString("utf8");
      }
      if (remaining === 0) settle();
    };
    c.exchange = {
      data(bytes) {
        received += bytes.length;
        if (remaining >= 0) return body(bytes);
        head = head ? Buffer.concat([head, bytes]) : bytes;
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) {
          if (head.length > MAX_HEAD) settle(new PieceFetchError("http_error", `parent ${parent.peerId} sent an oversized response head`));
          // A copy: the block under these bytes may be reused before the rest of the head arrives.
          else if (head === bytes) head = Buffer.from(bytes);
          return;
        }
        const parsed = parseHead(head.subarray(0, end).toString("latin1"));
        if (!parsed) return settle(new PieceFetchError("http_error", `parent ${parent.peerId} sent a malformed response`));
        ({ status, keepAlive } = parsed);
        remaining = parsed.contentLength;
        const rest = head.subarray(end + 4);
        head = undefined;
        if (rest.length || remaining === 0) body(rest);
      },
      closed(err) {
        if (received === 0 && c.uses > 0) return settle(new StaleConnection("unreachable", `parent ${parent.peerId} closed a kept-alive connection`));
        if ((err as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT") {
          return settle(new PieceFetchError("timeout", `piece ${n} from ${parent.peerId} stalled for ${stallMs} ms`));
        }
        // A parent that answered 200 and then cut the body short served a piece it could not give.
        if (status === 200 && !err) {
          return settle(new PieceFetchError("http_error", `parent ${parent.peerId} closed piece ${n} after ${received} bytes, short of its length`));
        }
        const cause = err ? describeNetworkError(err) : "connection closed mid-response";
        settle(new PieceFetchError("unreachable", `parent ${parent.peerId} unreachable: ${cause}`));
      },
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort);
    c.socket.setTimeout(stallMs);
    c.socket.resume();
    c.socket.write(
      `GET ${PEER_PATHS.piece(taskId, n)} HTTP/1.1\r\nHost: ${parent.ip}:${parent.uploadPort}\r\n${UPLOAD_CREDENTIAL_HEADER}: ${credential}\r\n\r\n`,
    );
  });
}

/** Status, body length and keep-alive of a response head; undefined unless it has a Content-Length. */
function parseHead(text: string): { status: number; contentLength: number; keepAlive: boolean } | undefined {
  const lines = text.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (!m) return undefined;
  let contentLength = -1;
  let keepAlive = lines[0]!.startsWith("HTTP/1.1");
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    if (name === "content-length" && /^\d+$/.test(value)) contentLength = Number(value);
    else if (name === "connection") keepAlive = value.toLowerCase() !== "close";
    else if (name === "transfer-encoding") return undefined;
  }
  return contentLength < 0 ? undefined : { status: Number(m[1]), contentLength, keepAlive };
}
