/**
 * A task's peers and the indexes that keep every scheduling question off a scan
 * of the whole swarm: peers by host, the origin fetchers, parent pools to sample
 * from, the children that pieces are spread to, and how many trusted peers hold
 * each piece. Peers call reindex()/pieceAdded() (through their task) on every change.
 */
import { KilnError } from "../../common/errors.js";
import { IndexedSet } from "../../common/indexed-set.js";
import type { Host } from "./host.js";
import type { Peer } from "./peer.js";

export class TaskPeers {
  private readonly byId = new Map<string, Peer>();
  private readonly byHost = new Map<Host, Set<Peer>>();
  /** Peers fetching from the origin (normally one). */
  private readonly fetchers = new Set<Peer>();
  /** Parent pools, disjoint, all serving and trusted: origin fetchers and seeds; others holding pieces; others with none yet. */
  readonly spreaders = new IndexedSet<Peer>();
  readonly holders = new IndexedSet<Peer>();
  readonly empties = new IndexedSet<Peer>();
  /** Peers still downloading that are not spreaders: who a new piece is spread to. */
  readonly children = new IndexedSet<Peer>();
  /** Trusted members whose pieces are counted in `holdersOf`. */
  private readonly counted = new Set<Peer>();
  /** Trusted peers holding each piece; `available` pieces have at least one. */
  private readonly holdersOf: number[] = [];
  private available = 0;

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Peer | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<Peer> {
    return this.byId.values();
  }

  add(peer: Peer): void {
    if (this.byId.has(peer.id)) throw new KilnError("CONFLICT", `peer ${peer.id} is already registered`);
    this.byId.set(peer.id, peer);
    let onHost = this.byHost.get(peer.host);
    if (!onHost) {
      onHost = new Set();
      this.byHost.set(peer.host, onHost);
    }
    onHost.add(peer);
    this.reindex(peer);
  }

  /** Forgets a peer that has left (its state is `left`). */
  delete(peer: Peer): void {
    if (this.byId.get(peer.id) !== peer) return;
    this.byId.delete(peer.id);
    const onHost = this.byHost.get(peer.host);
    onHost?.delete(peer);
    if (onHost?.size === 0) this.byHost.delete(peer.host);
    this.reindex(peer);
  }

  onHost(host: Host): ReadonlySet<Peer> | undefined {
    return this.byHost.get(host);
  }

  /** An origin fetcher, if any. */
  firstFetcher(): Peer | undefined {
    for (const p of this.fetchers) return p;
    return undefined;
  }

  /** Puts `peer` in the indexes its state, trust and pieces call for. */
  reindex(peer: Peer): void {
    const member = this.byId.get(peer.id) === peer && peer.state !== "left";
    toggle(this.fetchers, peer, member && peer.state === "back_to_source");
    const pool = !member || !peer.servesOthers ? undefined : peer.isSpreader ? this.spreaders : peer.pieces.size > 0 ? this.holders : this.empties;
    for (const p of [this.spreaders, this.holders, this.empties]) {
      if (p === pool) p.add(peer);
      else p.delete(peer);
    }
    const child = member && !peer.isSpreader && (peer.state === "running" || peer.state === "pending");
    if (child) this.children.add(peer);
    else this.children.delete(peer);
    const counts = member && !peer.untrusted;
    if (counts && !this.counted.has(peer)) {
      this.counted.add(peer);
      for (const n of peer.pieces) this.countHolder(n, 1);
    } else if (!counts && this.counted.delete(peer)) {
      for (const n of peer.pieces) this.countHolder(n, -1);
    }
  }

  pieceAdded(peer: Peer, n: number): void {
    if (this.counted.has(peer)) this.countHolder(n, 1);
    if (this.empties.has(peer)) this.reindex(peer);
  }

  /** Every piece below `total` is held by at least one trusted peer. */
  allHeld(total: number): boolean {
    if (this.available < total) return false;
    // Pieces beyond `total` (reported before the layout was known) would be counted too.
    if (this.holdersOf.length <= total) return true;
    for (let n = 0; n < total; n++) if (!this.holdersOf[n]) return false;
    return true;
  }

  private countHolder(n: number, delta: 1 | -1): void {
    const before = this.holdersOf[n] ?? 0;
    const after = before + delta;
    this.holdersOf[n] = after;
    if (before === 0 && after > 0) this.available++;
    else if (before > 0 && after === 0) this.available--;
  }
}

function toggle<T>(set: Set<T>, x: T, on: boolean): void {
  if (on) set.add(x);
  else set.delete(x);
}
