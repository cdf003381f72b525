/**
 * The upload server: serves verified pieces (and byte ranges) of tasks this peer
 * holds, and nothing else; takes the scheduler's prefetch triggers.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { sameSecret } from "../../common/secret.js";
import { KilnError } from "../../common/errors.js";
import { HEADERS } from "../../common/defaults.js";
import { isTaskId, taskIdFor } from "../../common/task-id.js";
import type { Logger } from "../../common/logger.js";
import { ImageImportRequest, PEER_PATHS, PrefetchRequest, UPLOAD_CREDENTIAL_HEADER, type ImageImportReply } from "../../api/peer.js";
import type { UploadMembership } from "./membership.js";
import type { PeerEngine } from "../download/engine.js";
import type { PeerMetrics } from "../metrics.js";
import { TokenBucket } from "./throttle.js";
import { HaveFeeds, type SpreadPolicy } from "./have-feed.js";
import { sendFile } from "./send-file.js";
import { UploadSlots } from "./upload-slots.js";
import { closeHttp, listenHttp, parseRange, readJson, sendError, sendJson } from "../http-util.js";
import type { Storage } from "../storage/storage.js";

export interface UploadOptions {
  concurrency: number;
  rateBytesPerSec: number;
  /** What the scheduler must send to trigger a prefetch. */
  controlToken: string;
  /** Who may fetch pieces and tasks: holders of the cluster's upload credential. */
  membership: UploadMembership;
  /** A seed peer spreads every task it holds; any peer spreads the tasks it fetches from the origin. */
  seed: boolean;
  spread: SpreadPolicy;
}

const PIECE_PATH = /^\/pieces\/([^/]+)\/([^/]+)$/;
const TASK_PATH = /^\/tasks\/([^/]+)$/;
const FEED_PATH = /^\/feed\/([^/]+)$/;
const CONTROL_TASK_PATH = /^\/api\/v1\/tasks\/([^/]+)$/;
/** Routes that serve content: pieces and whole tasks. */
const CONTENT_PATH = /^\/(?:pieces|tasks|feed)\//;

export class UploadServer {
  private readonly slots: UploadSlots;
  /** The node's container runtime, when the peer was given one (--containerd-address). */
  importer: { import(req: ImageImportRequest): Promise<ImageImportReply> } | undefined;
  /** Answers being sent, by task: cut when the task is deleted. */
  private readonly sending = new Map<string, Set<ServerResponse>>();
  private readonly bucket: TokenBucket;
  readonly feeds: HaveFeeds;
  readonly server: http.Server;

  constructor(
    private readonly storage: Storage,
    private readonly engine: PeerEngine,
    private readonly metrics: PeerMetrics,
    private readonly log: Logger,
    private readonly opts: UploadOptions,
  ) {
    this.bucket = new TokenBucket(opts.rateBytesPerSec);
    this.slots = new UploadSlots(opts.concurrency, opts.concurrency);
    this.feeds = new HaveFeeds((taskId) => opts.seed || engine.fetchesFromOrigin(taskId), opts.spread);
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err) => {
        if (!(err instanceof KilnError)) this.log.error({ err }, "upload request failed");
        sendError(res, err);
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }

  get freeSlots(): number {
    return this.slots.free;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === PEER_PATHS.health) return sendJson(res, 200, { ok: true });
    // Content goes to members of the cluster only (the control routes take the scheduler's control token).
    if (CONTENT_PATH.test(path) && !this.opts.membership.admits(req.headers[UPLOAD_CREDENTIAL_HEADER])) {
      throw new KilnError("UNAUTHORIZED", `this upload port serves members of its cluster only (${UPLOAD_CREDENTIAL_HEADER})`);
    }
    if (path === PEER_PATHS.prefetch) {
      if (req.method !== "POST") throw new KilnError("BAD_REQUEST", "use POST", 405);
      return this.prefetch(req, res);
    }
    if (path === PEER_PATHS.imageImport) {
      if (req.method !== "POST") throw new KilnError("BAD_REQUEST", "use POST", 405);
      return this.importImage(req, res);
    }
    const control = CONTROL_TASK_PATH.exec(path);
    if (control) {
      if (req.method !== "DELETE") throw new KilnError("BAD_REQUEST", "use DELETE", 405);
      return this.deleteTask(req, res, control[1]!);
    }
    const feed = FEED_PATH.exec(path);
    if (feed) return this.subscribe(req, res, feed[1]!);
    const piece = PIECE_PATH.exec(path);
    const whole = TASK_PATH.exec(path);
    if (!piece && !whole) throw new KilnError("NOT_FOUND", `no route for ${req.method} ${path}`);
    if (req.method !== "GET" && req.method !== "HEAD") throw new KilnError("BAD_REQUEST", "use GET or HEAD", 405);
    const taskId = (piece ?? whole)![1]!;
    if (!isTaskId(taskId)) throw new KilnError("BAD_REQUEST", "task id must be 64 or 128 lowercase hex characters");
    const task = await this.storage.open(taskId);
    if (!task || !(await this.storage.intact(task))) throw new KilnError("NOT_FOUND", `task ${taskId} is not held by this peer`);

    let start: number;
    let end: number;
    let ranged = false;
    const headers: Record<string, string> = {};
    if (piece) {
      const raw = piece[2]!;
      if (!/^\d{1,9}$/.test(raw)) throw new KilnError("BAD_REQUEST", "piece number must be a non-negative integer");
      const n = Number(raw);
      const info = task.piece(n);
      if (!info || task.meta.pieceLength === null) throw new KilnError("NOT_FOUND", `piece ${n} of task ${taskId} is not available here`);
      start = n * task.meta.pieceLength;
      end = start + info.length;
      headers[HEADERS.pieceDigest] = info.digest;
    } else {
      if (!task.complete || task.meta.contentLength === null) throw new KilnError("NOT_FOUND", `task ${taskId} is not complete here`);
      const length = task.meta.contentLength;
      const range = parseRange(req.headers.range, length);
      if (range === "invalid") {
        return sendJson(
          res,
          416,
          { message: `unsatisfiable range ${req.headers.range} for ${length} bytes`, code: "BAD_REQUEST" },
          { "content-range": `bytes */${length}` },
        );
      }
      start = range?.start ?? 0;
      end = range?.end ?? length;
      headers["accept-ranges"] = "bytes";
      ranged = range !== undefined;
      if (range) headers["content-range"] = `bytes ${start}-${end - 1}/${length}`;
    }
    const status = ranged ? 206 : 200;
    if (req.method === "HEAD" || end === start) {
      res.writeHead(status, { "content-type": "application/octet-stream", "content-length": String(end - start), ...headers });
      return void res.end();
    }
    // Listed while it waits in line too: a delete of the task cuts it there (its slot wait ends as "gone").
    const sending = this.sending.get(taskId) ?? new Set();
    this.sending.set(taskId, sending.add(res));
    const unlist = () => {
      sending.delete(res);
      if (sending.size === 0 && this.sending.get(taskId) === sending) this.sending.delete(taskId);
    };
    // Counted from the moment it is asked for, line included: a spreader that offered a piece to one child
    // must not offer it to the next while the first child's request waits for a slot (two copies of one piece).
    const pieceSent = piece ? this.feeds.uploadStarted(taskId, Number(piece[2])) : undefined;
    const slot = await this.slots.acquire(res);
    if (slot !== "granted") {
      pieceSent?.(false);
      unlist();
      if (slot === "gone") return;
      this.metrics.uploadsRejected.inc();
      return sendJson(res, 429, { message: "all upload slots are busy, and as many requests wait for one", code: "UNAVAILABLE" }, { "retry-after": "1" });
    }
    res.writeHead(status, { "content-type": "application/octet-stream", "content-length": String(end - start), ...headers });
    this.metrics.activeUploads.inc();
    const release = task.acquire();
    task.touch();
    let sentWhole = false;
    try {
      await sendFile(task.contentPath, start, end, res, (bytes) => {
        this.metrics.uploadBytes.inc(bytes);
        return this.bucket.take(bytes);
      });
      sentWhole = true;
    } catch (err) {
      res.destroy();
      this.log.debug({ err: (err as Error).message, taskId }, "upload interrupted");
    } finally {
      pieceSent?.(sentWhole);
      this.slots.release();
      this.metrics.activeUploads.dec();
      release();
      unlist();
    }
  }

  /** A child's have feed of a task this peer holds (or is downloading). */
  private async subscribe(req: IncomingMessage, res: ServerResponse, taskId: string): Promise<void> {
    if (req.method !== "GET") throw new KilnError("BAD_REQUEST", "use GET", 405);
    if (!isTaskId(taskId)) throw new KilnError("BAD_REQUEST", "task id must be 64 or 128 lowercase hex characters");
    const task = await this.storage.open(taskId);
    if (!task) throw new KilnError("NOT_FOUND", `task ${taskId} is not held by this peer`);
    this.feeds.subscribe(task, res);
  }

  private checkControlToken(req: IncomingMessage, what: string): void {
    // Only the scheduler this peer announced its token to may control it: otherwise anyone
    // reaching the upload port could have it download any URL, or drop any task.
    if (!sameSecret(req.headers.authorization, `Bearer ${this.opts.controlToken}`)) {
      throw new KilnError("UNAUTHORIZED", `${what} needs the control token this peer announced to its scheduler (Authorization: Bearer …)`);
    }
  }

  /** delete_task: uploads of the task in flight are cut (the child sees a short body, never other bytes), then it is removed. */
  private async deleteTask(req: IncomingMessage, res: ServerResponse, taskId: string): Promise<void> {
    this.checkControlToken(req, "deleting a task");
    if (!isTaskId(taskId)) throw new KilnError("BAD_REQUEST", "task id must be 64 or 128 lowercase hex characters");
    this.cutUploads(taskId);
    this.feeds.end(taskId);
    const bytes = await this.engine.deleteTask(taskId, "the task was deleted by an operator (delete_task)");
    this.cutUploads(taskId);
    sendJson(res, 200, { deleted: bytes !== undefined, bytes: bytes ?? 0 });
  }

  /** Pull schedules: the node's runtime pulls the image through this peer (or, without one, the cache is all there is). */
  private async importImage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkControlToken(req, "importing an image");
    const body = await readJson(req, ImageImportRequest);
    if (!this.importer)
      return sendJson(res, 200, {
        imported: false,
        detail: "no container runtime configured (kiln peer --containerd-address): the image is in the peer cache only",
      });
    sendJson(res, 200, await this.importer.import(body));
  }

  private cutUploads(taskId: string): void {
    for (const res of this.sending.get(taskId) ?? []) res.destroy();
  }

  private async prefetch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkControlToken(req, "prefetch");
    const body = await readJson(req, PrefetchRequest);
    const expected = taskIdFor(body.download);
    if (expected !== body.taskId) throw new KilnError("BAD_REQUEST", `taskId ${body.taskId} does not match the download (${expected})`);
    const handle = await this.engine.download(body.download);
    handle.done.catch((err: Error) => this.log.warn({ task: body.taskId, err: err.message }, "prefetch failed"));
    sendJson(res, 202, { accepted: true, taskId: handle.taskId });
  }

  listen(host: string, port: number): Promise<number> {
    return listenHttp(this.server, host, port);
  }

  close(): Promise<void> {
    this.feeds.closeAll();
    return closeHttp(this.server);
  }
}
