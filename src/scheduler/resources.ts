/** The scheduler's in-memory model: hosts, tasks and the peers that join them. */
import { EventEmitter } from "node:events";
import { StateMachine } from "../common/fsm.js";
import { BitSet } from "../common/bitset.js";
import type { DownloadSpec, TaskError } from "../api/common.js";
import type { HostAnnounce, PeerState, PieceInfo, TaskInfo, TaskState } from "../api/scheduler.js";

export type HostState = "active" | "dead";

export class Host {
  readonly fsm = new StateMachine<HostState>("active", { active: ["dead"], dead: [] }, "host");
  lastSeen = Date.now();
  constructor(public info: HostAnnounce) {}

  get id(): string {
    return this.info.id;
  }
  get alive(): boolean {
    return this.fsm.is("active");
  }
}

const PEER_TRANSITIONS: Record<PeerState, PeerState[]> = {
  pending: ["running", "back_to_source", "failed", "left"],
  running: ["back_to_source", "succeeded", "failed", "left"],
  back_to_source: ["succeeded", "failed", "left"],
  succeeded: ["left"],
  failed: ["left"],
  left: [],
};

export class Peer {
  readonly fsm: StateMachine<PeerState>;
  readonly pieces = new BitSet();
  /** Parents this peer reported as unreachable or slow: not offered to it again. */
  readonly blockedParents = new Set<string>();
  /** Times other peers reported failures fetching from this one. */
  readonly failuresAsParent: number[] = [];
  /** Served a piece that failed its digest: offered to nobody again. */
  untrusted = false;
  error: TaskError | null = null;

  constructor(
    readonly id: string,
    readonly host: Host,
    readonly task: Task,
  ) {
    this.fsm = new StateMachine<PeerState>("pending", PEER_TRANSITIONS, `peer ${id}`);
  }

  get state(): PeerState {
    return this.fsm.state;
  }

  recentFailures(now: number, windowMs = 60_000): number {
    while (this.failuresAsParent.length && this.failuresAsParent[0]! < now - windowMs) this.failuresAsParent.shift();
    return this.failuresAsParent.length;
  }
}

const TASK_TRANSITIONS: Record<TaskState, TaskState[]> = {
  pending: ["running", "failed"],
  running: ["succeeded", "failed", "pending"],
  succeeded: ["pending"],
  failed: ["pending"],
};

export class Task {
  readonly fsm = new StateMachine<TaskState>("pending", TASK_TRANSITIONS, "task");
  readonly peers = new Map<string, Peer>();
  readonly digests = new Map<number, PieceInfo>();
  /** Preheat hosts not triggered yet (concurrent_peer_count), and how many may fetch at once. */
  preheatQueue: { hosts: Host[]; limit: number; running: Set<string> } | null = null;
  /** When each piece's digest became known (the origin fetcher first held it). */
  readonly pieceSeenAt = new Map<number, number>();
  contentLength: number | null = null;
  pieceLength: number | null = null;
  error: TaskError | null = null;
  /** A seed peer was asked to fetch from the origin; until when we wait for it. */
  seedTrigger: { hostId: string; until: number } | null = null;
  version = 0;
  lastActivity = Date.now();
  private readonly changes = new EventEmitter();

  constructor(
    readonly id: string,
    /** Origin request, credentials included; memory only, never persisted or logged. */
    public spec: DownloadSpec,
  ) {
    this.changes.setMaxListeners(0);
  }

  get state(): TaskState {
    return this.fsm.state;
  }

  get totalPieces(): number | null {
    if (this.contentLength === null || this.pieceLength === null) return null;
    return this.contentLength === 0 ? 0 : Math.ceil(this.contentLength / this.pieceLength);
  }

  /** The peer currently fetching from the origin, if any. */
  get source(): Peer | undefined {
    for (const p of this.peers.values()) if (p.state === "back_to_source" && p.host.alive) return p;
    return undefined;
  }

  touch(): void {
    this.version++;
    this.lastActivity = Date.now();
    this.changes.emit("change");
  }

  /** Resolves when the version moves past `since`, or after `ms`. */
  waitForChange(since: number, ms: number): Promise<void> {
    if (this.version > since || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.changes.off("change", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.changes.on("change", done);
    });
  }

  /** Every piece is held by at least one live, trusted peer. */
  fullyAvailable(): boolean {
    const total = this.totalPieces;
    if (total === null) return false;
    for (let n = 0; n < total; n++) {
      let found = false;
      for (const p of this.peers.values()) {
        if (p.host.alive && !p.untrusted && p.pieces.has(n)) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return true;
  }

  info(): TaskInfo {
    return {
      id: this.id,
      state: this.state,
      contentLength: this.contentLength,
      pieceLength: this.pieceLength,
      totalPieces: this.totalPieces,
      error: this.error,
    };
  }
}
