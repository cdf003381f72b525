/** A node that announced itself: its peer's upload endpoint, capacity and place, and its peers on every task. */
import { StateMachine } from "../../common/fsm.js";
import type { HostAnnounce } from "../../api/scheduler.js";
import type { HostRecord } from "../../api/peers.js";
import { hostTypeOf } from "../../api/tasks.js";
import type { Peer } from "./peer.js";

export type HostState = "active" | "dead";

export class Host {
  private readonly fsm = new StateMachine<HostState>("active", { active: ["dead"], dead: [] }, "host");
  lastSeen = Date.now();
  readonly createdAt = Date.now();
  /** This host's peers, over every task (what a dropped host takes with it). */
  readonly peers = new Set<Peer>();

  constructor(public info: HostAnnounce) {}

  get id(): string {
    return this.info.id;
  }

  get alive(): boolean {
    return this.fsm.state === "active";
  }

  get isSeed(): boolean {
    return this.info.isSeed;
  }

  /** Free upload slots as a share of all of them, 0 when it has none. */
  get freeSlotShare(): number {
    return this.info.uploadSlots > 0 ? this.info.freeUploadSlots / this.info.uploadSlots : 0;
  }

  /** What the manager's peer inventory keeps of this host. */
  record(): HostRecord {
    const i = this.info;
    return {
      id: i.id,
      hostname: i.hostname,
      ip: i.ip,
      type: hostTypeOf(i.isSeed),
      ports: { upload: i.uploadPort, ...(i.proxyPort ? { proxy: i.proxyPort } : {}), ...(i.metricsPort ? { metrics: i.metricsPort } : {}) },
      labels: i.labels,
      idc: i.idc,
      location: i.location,
      version: i.version,
      stats: i.stats ?? { tasks: 0, bytesStored: 0, freeDiskBytes: 0, uploadedBytes: 0, swarmBytes: 0, originBytes: 0 },
      createdAt: new Date(this.createdAt).toISOString(),
      lastSeenAt: new Date(this.lastSeen).toISOString(),
    };
  }

  die(): void {
    this.fsm.to("dead");
  }
}
