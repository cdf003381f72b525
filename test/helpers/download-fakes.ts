/**
 * Fakes for driving a download session without processes: a scheduler that
 * answers from a script and records every report, parents that serve (or spoil)
 * pieces from memory, and an origin that serves a buffer.
 */
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { KilnError } from "../../src/common/errors.js";
import { BitSet } from "../../src/common/bitset.js";
import { sha256 } from "../../src/common/digest.js";
import { pieceCount } from "../../src/common/piece.js";
import type { DownloadSpec } from "../../src/api/common.js";
import type {
  FailureReport,
  ParentInfo,
  PeerResult,
  PieceInfo,
  PieceReport,
  RegisterPeerInput,
  RegisterPeerReply,
  ScheduleAction,
  ScheduleReply,
} from "../../src/api/scheduler.js";
import { PeerMetrics } from "../../src/peer/metrics.js";
import { Storage } from "../../src/peer/storage/storage.js";
import type { EngineScheduler, SessionScheduler } from "../../src/peer/download/scheduler-port.js";
import type { PieceSource } from "../../src/peer/download/piece-fetcher.js";
import type { FeedEvents, FeedSource } from "../../src/peer/download/have-feed-client.js";
import { PieceFetchError, type PieceSink } from "../../src/peer/download/piece-client.js";
import type { OriginSource } from "../../src/peer/download/back-to-source.js";
import type { DownloadOptions, SessionDeps } from "../../src/peer/download/session.js";
import { PieceBudget } from "../../src/peer/download/piece-budget.js";
import { PEER } from "../../src/common/defaults.js";

export const silentLog = pino({ level: "silent" });

/** A file cut into pieces, with the digests the scheduler would hand out. */
export class Content {
  readonly pieces: PieceInfo[] = [];
  constructor(
    readonly data: Buffer,
    readonly pieceLength: number,
  ) {
    for (let n = 0; n < pieceCount(data.length, pieceLength); n++) {
      const bytes = this.piece(n);
      this.pieces.push({ number: n, digest: sha256(bytes), length: bytes.length });
    }
  }
  piece(n: number): Buffer {
    return this.data.subarray(n * this.pieceLength, Math.min(this.data.length, (n + 1) * this.pieceLength));
  }
  get digest(): string {
    return sha256(this.data);
  }
}

/** A parent as the scheduler names it, with the pieces its have feed says it holds. */
export type FakeParent = ParentInfo & { holds: number[] };

export function parent(peerId: string, pieces: Iterable<number>): FakeParent {
  return { peerId, hostId: `host-${peerId}`, ip: "127.0.0.1", uploadPort: 1, isSeed: false, holds: [...pieces] };
}

export function feedBits(p: ParentInfo): BitSet {
  const bits = new BitSet();
  for (const n of (p as Partial<FakeParent>).holds ?? []) bits.add(n);
  return bits;
}

/** Have feeds that open with what each fake parent holds and then stay quiet; records which parents were subscribed to. */
export class FakeFeeds implements FeedSource {
  readonly opened: string[] = [];
  open(p: ParentInfo, _taskId: string, events: FeedEvents): () => void {
    this.opened.push(p.peerId);
    let open = true;
    queueMicrotask(() => open && events.bits(p.peerId, feedBits(p)));
    return () => {
      open = false;
    };
  }
}

export interface ScriptedReply {
  action: ScheduleAction;
  parents?: ParentInfo[];
  /** Known layout and digests; the whole content's when omitted. */
  layout?: boolean;
  /** The scheduler does not answer this poll (connection refused). */
  down?: boolean;
}

/** Answers registration and each poll from a script (the last entry repeats); records what the session reports. */
export class FakeScheduler implements EngineScheduler {
  readonly pieceReports: PieceReport[] = [];
  readonly failures: FailureReport[] = [];
  readonly results: PeerResult[] = [];
  readonly registrations: RegisterPeerInput[] = [];
  polls = 0;
  private version = 0;
  private readonly stopped = new AbortController();

  constructor(
    readonly taskId: string,
    private readonly content: Content,
    private readonly script: ScriptedReply[],
    /** Thrown by every registration; a list: one per registration, in turn, then it answers. */
    private readonly registerError?: KilnError | KilnError[],
    /** How long each poll waits before answering (a long poll with no news). */
    private readonly pollDelayMs = 5,
  ) {}

  private reply(i: number): ScheduleReply {
    const step = this.script[Math.min(i, this.script.length - 1)]!;
    const known = step.layout !== false;
    const { data, pieceLength } = this.content;
    return {
      version: ++this.version,
      action: step.action,
      task: {
        id: this.taskId,
        state: "running",
        contentLength: known ? data.length : null,
        pieceLength: known ? pieceLength : null,
        totalPieces: known ? this.content.pieces.length : null,
        error: null,
        validator: known ? ORIGIN_VERSION : null,
      },
      pieces: known ? this.content.pieces : [],
      parents: step.parents ?? [],
    };
  }

  /** Answers the polls still waiting (a test over does not wait out a long poll). */
  stop(): void {
    this.stopped.abort();
  }

  async registerPeer(req: RegisterPeerInput): Promise<RegisterPeerReply> {
    this.registrations.push(req);
    const err = Array.isArray(this.registerError) ? this.registerError.shift() : this.registerError;
    if (err) throw err;
    return { taskId: this.taskId, ...this.reply(0) };
  }

  async schedule(): Promise<ScheduleReply> {
    this.polls++;
    await sleep(this.pollDelayMs, undefined, { signal: this.stopped.signal }).catch(() => undefined);
    if (this.script[Math.min(this.polls, this.script.length - 1)]!.down) {
      throw Object.assign(new Error("connect ECONNREFUSED (fake scheduler down)"), { code: "ECONNREFUSED" });
    }
    return this.reply(this.polls);
  }

  async reportPieces(_t: string, _p: string, report: PieceReport) {
    this.pieceReports.push(report);
    return { rejected: [] };
  }

  async reportFailure(_t: string, _p: string, report: FailureReport) {
    this.failures.push(report);
    return { ok: true as const };
  }

  async reportResult(_t: string, _p: string, result: PeerResult) {
    this.results.push(result);
    return { ok: true as const };
  }

  async leaveTask() {
    return { ok: true as const };
  }

  reportedPieces(): number[] {
    return this.pieceReports.flatMap((r) => r.pieces.map((p) => p.number)).sort((a, b) => a - b);
  }
}

export type ParentBehaviour = "serve" | "corrupt" | "unreachable" | "busy" | "refuse";

/** Parents that serve pieces of `content` from memory, each as told (per parent, optionally per piece). */
export class FakeParents implements PieceSource {
  readonly served: { parent: string; piece: number; behaviour: ParentBehaviour }[] = [];
  constructor(
    private readonly content: Content,
    /** How each parent answers; `attempt` counts the requests for that piece from that parent, from 1. */
    private readonly behaviour: (parent: string, piece: number, attempt: number) => ParentBehaviour = () => "serve",
  ) {}

  async fetch(p: ParentInfo, _taskId: string, n: number, sink: PieceSink): Promise<void> {
    const attempt = this.served.filter((x) => x.parent === p.peerId && x.piece === n).length + 1;
    const behaviour = this.behaviour(p.peerId, n, attempt);
    this.served.push({ parent: p.peerId, piece: n, behaviour });
    await new Promise((r) => setImmediate(r));
    if (behaviour === "unreachable") throw new PieceFetchError("unreachable", `parent ${p.peerId} unreachable: ECONNREFUSED`);
    if (behaviour === "busy") throw new PieceFetchError("busy", `parent ${p.peerId} is busy`);
    if (behaviour === "refuse") throw new PieceFetchError("http_error", `parent ${p.peerId} answered 404 for piece ${n}`);
    const bytes = Buffer.from(this.content.piece(n));
    if (behaviour === "corrupt") bytes.fill(0x5a);
    // Two chunks, as a socket would deliver them, waiting when the sink asks to.
    const half = Math.floor(bytes.length / 2);
    for (const chunk of [bytes.subarray(0, half), bytes.subarray(half)]) if (!sink.write(chunk)) await sink.drained();
  }
}

/** The fake origin's ETag, which the fake scheduler reports as the task's version. */
export const ORIGIN_VERSION = '"v1"';

/** An origin serving `content` (from a range start) as version `validator`, recording each request's start and If-Range. */
export class FakeOrigin implements OriginSource {
  requests: number[] = [];
  ifRanges: (string | undefined)[] = [];
  constructor(
    private readonly content: Content,
    private readonly validator = ORIGIN_VERSION,
  ) {}
  async open(_url: string, _headers: Record<string, string>, opts: { from: number; ifRange?: string }) {
    this.requests.push(opts.from);
    this.ifRanges.push(opts.ifRange);
    const body = this.content.data.subarray(opts.from);
    const chunks: Buffer[] = [];
    for (let off = 0; off < body.length; off += 777) chunks.push(body.subarray(off, off + 777));
    return {
      body: Readable.from(chunks),
      contentLength: this.content.data.length,
      offset: opts.from,
      finalUrl: "http://origin.test/file",
      validator: this.validator,
    };
  }
}

export const testOptions: DownloadOptions = {
  concurrentPieces: 4,
  piecesPerParent: 2,
  pieceStallMs: 1_000,
  noParentFallbackMs: 60_000,
  parentsPerSchedule: 4,
  originIdleTimeoutMs: 5_000,
  originResumes: 3,
};

export function deps<S extends SessionScheduler>(
  scheduler: S,
  pieces: PieceSource,
  origin: OriginSource,
  opts: Partial<DownloadOptions> = {},
  budget = new PieceBudget(PEER.hostConcurrentPieces),
): SessionDeps & { scheduler: S; metrics: PeerMetrics } {
  return {
    scheduler,
    pieces,
    feeds: new FakeFeeds(),
    origin,
    hostId: "host-a",
    log: silentLog,
    metrics: new PeerMetrics(),
    opts: { ...testOptions, ...opts },
    budget,
  };
}

export async function tempStorage(): Promise<{ storage: Storage; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-download-"));
  const storage = new Storage(dir, silentLog);
  await storage.load();
  const cleanup = async () => {
    await storage.flush();
    await rm(dir, { recursive: true, force: true });
  };
  return { storage, cleanup };
}

export function spec(url = "http://origin.test/file"): DownloadSpec {
  return { url, headers: {}, tag: "", application: "", filteredQueryParams: [] };
}

export async function counter(metrics: PeerMetrics, name: "kiln_peer_download_bytes_total" | "kiln_peer_piece_failures_total", label: Record<string, string>) {
  const m = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return m.filter((v) => Object.entries(label).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}
