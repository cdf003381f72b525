/** Every live host by ID, and the seed hosts among them (the few a seed trigger picks from). */
import { KilnError } from "../../common/errors.js";
import type { HostAnnounce } from "../../api/scheduler.js";
import { Host } from "./host.js";

export class HostManager {
  private readonly byId = new Map<string, Host>();
  private readonly seeds = new Set<Host>();

  get(id: string): Host | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<Host> {
    return this.byId.values();
  }

  seedHosts(): ReadonlySet<Host> {
    return this.seeds;
  }

  /** Records an announce; `created` when the host was not known (first announce, or dropped since). */
  announce(info: HostAnnounce, now = Date.now()): { host: Host; created: boolean } {
    const existing = this.byId.get(info.id);
    if (existing?.alive) {
      const wasSeed = existing.isSeed;
      existing.info = info;
      existing.lastSeen = now;
      if (wasSeed !== info.isSeed) {
        if (info.isSeed) this.seeds.add(existing);
        else this.seeds.delete(existing);
        // Whether a peer spreads pieces depends on its host being a seed.
        for (const peer of existing.peers) peer.task.reindex(peer);
      }
      return { host: existing, created: false };
    }
    const host = new Host(info);
    host.lastSeen = now;
    this.byId.set(host.id, host);
    if (host.isSeed) this.seeds.add(host);
    return { host, created: true };
  }

  /** The host `id`, which must be alive. */
  live(id: string): Host {
    const host = this.byId.get(id);
    if (!host?.alive) throw new KilnError("NOT_FOUND", `unknown host ${id}: announce it first`);
    return host;
  }

  /** Marks the host dead and forgets it; its peers are the caller's to remove. */
  remove(host: Host): void {
    host.die();
    this.byId.delete(host.id);
    this.seeds.delete(host);
  }

  /** Hosts not heard from for longer than `timeoutMs`. */
  expired(now: number, timeoutMs: number): Host[] {
    const out: Host[] = [];
    for (const host of this.byId.values()) if (now - host.lastSeen > timeoutMs) out.push(host);
    return out;
  }
}
