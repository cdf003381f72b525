/** A node that announced itself: its peer's upload endpoint, capacity and place, and its peers on every task. */
import { StateMachine } from "../../common/fsm.js";
import type { HostAnnounce } from "../../api/scheduler.js";
import type { Peer } from "./peer.js";

export type HostState = "active" | "dead";

export class Host {
  private readonly fsm = new StateMachine<HostState>("active", { active: ["dead"], dead: [] }, "host");
  lastSeen = Date.now();
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

  die(): void {
    this.fsm.to("dead");
  }
}
