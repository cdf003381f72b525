/**
 * Live progress of one preheated URL on one cluster, from the scheduler's task
 * status (pieces and bytes each asked host holds, as the peers report them), with
 * a rate per host over the last few seconds and log lines as things happen.
 */
import type { HostProgress, UrlProgress } from "../../api/preheat.js";
import type { JobProgress } from "../../api/jobs.js";
import type { PreheatReply, TaskStatus } from "../../api/scheduler.js";
import { hostTypeOf } from "../../api/tasks.js";
import { formatBytes } from "../../common/format-bytes.js";
import { hostLabel } from "../../common/host-label.js";

/** Rates are measured over this window. */
const RATE_WINDOW_MS = 5000;
/** Hosts listed per URL; the sums cover every host asked. */
export const MAX_LISTED_HOSTS = 50;

type StatusPeer = TaskStatus["peers"][number];

interface HostTrack {
  view: HostProgress;
  samples: { t: number; bytes: number }[];
  startedAt?: number;
  settled: boolean;
}

export class UrlTracker {
  readonly view: UrlProgress;
  private readonly hosts = new Map<string, HostTrack>();

  constructor(
    url: string,
    clusterId: number,
    private readonly clusterName: string,
    /** A log line (the caller adds the time). */
    private readonly log: (line: string) => void,
  ) {
    this.view = {
      url,
      task_id: "",
      scheduler_cluster_id: clusterId,
      state: "pending",
      content_length: null,
      total_pieces: null,
      bytes_done: 0,
      bytes_total: null,
      pieces_done: 0,
      pieces_total: null,
      rate_bps: 0,
      hosts_fetching: 0,
      hosts: [],
    };
  }

  /** The scheduler took the preheat: these hosts were asked (refused ones are settled by the caller). */
  asked(reply: PreheatReply): void {
    this.view.task_id = reply.taskId;
    this.view.state = "running";
    for (const h of reply.hosts) {
      this.hosts.set(h.hostId, {
        view: { hostname: h.hostname, ip: h.ip, state: "queued", finished_pieces: 0, bytes_done: 0, rate_bps: 0 },
        samples: [],
        settled: false,
      });
    }
    const names = reply.hosts.map((h) => hostLabel(h)).join(", ");
    this.line(`task ${reply.taskId.slice(0, 12)}… asked ${reply.hosts.length} host(s): ${names}`);
    this.refresh();
  }

  /** A fresh task status: each asked host's pieces, bytes and state. */
  status(status: TaskStatus, now = Date.now()): void {
    const t = status.task;
    if (t.contentLength !== null && this.view.content_length === null) {
      this.line(`size ${formatBytes(t.contentLength)} in ${t.totalPieces ?? 0} piece(s) of ${formatBytes(t.pieceLength ?? 0)}`);
    }
    this.view.content_length = t.contentLength;
    this.view.total_pieces = t.totalPieces;
    for (const [hostId, track] of this.hosts) {
      if (track.settled) continue;
      const peer = pick(status.peers.filter((p) => p.hostId === hostId));
      if (!peer) continue;
      const v = track.view;
      if (peer.port !== undefined) v.port = peer.port;
      v.host_type = hostTypeOf(peer.isSeed);
      v.finished_pieces = peer.finishedPieces;
      v.bytes_done = peer.finishedBytes ?? estimateBytes(peer.finishedPieces, t);
      const fromOrigin = peer.state === "back_to_source";
      if (peer.state !== "failed" && peer.state !== "left" && peer.state !== "succeeded") {
        if (v.state === "queued") {
          track.startedAt = now;
          this.line(`${peer.isSeed ? "seed peer" : "peer"} ${hostLabel(v)} started fetching${fromOrigin ? " from the origin" : ""}`);
        } else if (fromOrigin && !v.from_origin) this.line(`${hostLabel(v)} fetches from the origin`);
        v.state = "fetching";
        v.from_origin = fromOrigin || v.from_origin;
      }
      track.samples.push({ t: now, bytes: v.bytes_done });
      v.rate_bps = rate(track.samples, now);
    }
    this.refresh();
  }

  /** The dispatcher's verdict on one host: done (every byte) or failed with a reason. */
  settle(hostId: string, ok: boolean, reason: string, now = Date.now()): void {
    const track = this.hosts.get(hostId);
    if (!track || track.settled) return;
    track.settled = true;
    const v = track.view;
    v.rate_bps = 0;
    if (ok) {
      v.state = "succeeded";
      if (this.view.content_length !== null) v.bytes_done = this.view.content_length;
      if (this.view.total_pieces !== null) v.finished_pieces = this.view.total_pieces;
      const took = track.startedAt !== undefined ? ` in ${((now - track.startedAt) / 1000).toFixed(1)} s` : "";
      this.line(`${hostLabel(v)} done: ${formatBytes(v.bytes_done)}${took}`);
    } else {
      v.state = "failed";
      v.error = reason;
    }
    this.refresh();
  }

  /** The dispatch ended. */
  finish(failed: boolean): void {
    this.view.state = failed ? "failed" : "succeeded";
    this.view.rate_bps = 0;
    this.view.hosts_fetching = 0;
    for (const t of this.hosts.values()) t.view.rate_bps = 0;
  }

  private refresh(): void {
    const v = this.view;
    const all = [...this.hosts.values()].map((t) => t.view);
    v.bytes_done = sum(all.map((h) => h.bytes_done));
    v.pieces_done = sum(all.map((h) => h.finished_pieces));
    v.bytes_total = v.content_length === null ? null : v.content_length * all.length;
    v.pieces_total = v.total_pieces === null ? null : v.total_pieces * all.length;
    v.rate_bps = sum(all.map((h) => h.rate_bps));
    v.hosts_fetching = all.filter((h) => h.state === "fetching").length;
    v.hosts = listed(all);
  }

  private line(text: string): void {
    this.log(`[${this.clusterName}] ${this.view.url}: ${text}`);
  }
}

/** Job-wide sums over every URL, Dragonfly's three counts kept as they are. */
export function jobProgress(base: Pick<JobProgress, "total" | "succeeded" | "failed">, urls: UrlProgress[]): JobProgress {
  const known = urls.every((u) => u.bytes_total !== null);
  return {
    total: base.total,
    succeeded: base.succeeded,
    failed: base.failed,
    bytes_done: sum(urls.map((u) => u.bytes_done)),
    bytes_total: known ? sum(urls.map((u) => u.bytes_total ?? 0)) : null,
    pieces_done: sum(urls.map((u) => u.pieces_done)),
    pieces_total: known ? sum(urls.map((u) => u.pieces_total ?? 0)) : null,
    rate_bps: sum(urls.map((u) => u.rate_bps)),
    hosts_fetching: sum(urls.map((u) => u.hosts_fetching)),
  };
}

/** Bytes per second between the oldest sample in the window and the newest; older samples are dropped. */
export function rate(samples: { t: number; bytes: number }[], now: number): number {
  while (samples.length > 2 && samples[1]!.t <= now - RATE_WINDOW_MS) samples.shift();
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.t <= first.t) return 0;
  return Math.max(0, Math.round(((last.bytes - first.bytes) * 1000) / (last.t - first.t)));
}

/** The peer that says most about a host: the one that finished, else the active one furthest along, else the last failed. */
function pick(peers: StatusPeer[]): StatusPeer | undefined {
  const done = peers.find((p) => p.state === "succeeded");
  if (done) return done;
  const active = peers.filter((p) => p.state !== "failed" && p.state !== "left").sort((a, b) => b.finishedPieces - a.finishedPieces);
  return active[0] ?? peers.find((p) => p.state === "failed");
}

/** For schedulers that do not report bytes: full pieces, capped at the content length. */
function estimateBytes(pieces: number, t: TaskStatus["task"]): number {
  if (t.pieceLength === null) return 0;
  const bytes = pieces * t.pieceLength;
  return t.contentLength === null ? bytes : Math.min(bytes, t.contentLength);
}

const ORDER: Record<HostProgress["state"], number> = { fetching: 0, failed: 1, queued: 2, succeeded: 3 };

/** At most MAX_LISTED_HOSTS, the ones fetching first. */
function listed(all: HostProgress[]): HostProgress[] {
  if (all.length <= MAX_LISTED_HOSTS) return all;
  return [...all].sort((a, b) => ORDER[a.state] - ORDER[b.state]).slice(0, MAX_LISTED_HOSTS);
}

function sum(xs: number[]): number {
  let n = 0;
  for (const x of xs) n += x;
  return n;
}
