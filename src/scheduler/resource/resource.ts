/** The scheduler's in-memory model: hosts, tasks with their peers, and the seed peers that can be triggered. */
import type { Logger } from "../../common/logger.js";
import type { HostAnnounce } from "../../api/scheduler.js";
import type { Host } from "./host.js";
import { HostManager } from "./hosts.js";
import { PeerControl, type ControlClientFactory } from "./peer-control.js";
import { TaskManager } from "./tasks.js";

export class Resource {
  readonly hosts = new HostManager();
  readonly tasks = new TaskManager();
  readonly peerControl: PeerControl;

  constructor(
    private readonly log: Logger,
    newControlClient?: ControlClientFactory,
  ) {
    this.peerControl = new PeerControl(this.hosts, newControlClient);
  }

  /** Returns true when the host was not known (its peer should re-register the tasks it holds). */
  announceHost(info: HostAnnounce): boolean {
    const known = this.hosts.get(info.id);
    // Restarted within the host timeout: its old peers would stay "fetching" (or serving) forever otherwise.
    if (known?.alive && info.instance && known.info.instance && known.info.instance !== info.instance) this.dropHost(known, "host restarted (new process)");
    const { created } = this.hosts.announce(info);
    if (created) this.log.info({ host: info.id, ip: info.ip, seed: info.isSeed }, "host joined");
    return created;
  }

  /** The host and its peers are gone; tasks that waited for it as their seed stop waiting. */
  dropHost(host: Host, reason: string): void {
    this.hosts.remove(host);
    this.peerControl.forget(host);
    for (const peer of [...host.peers]) peer.task.leave(peer);
    for (const task of this.tasks.values()) {
      // Peers waiting for this seed go to the origin instead of waiting out the trigger.
      if (task.seedTrigger?.hostId === host.id) task.seedGone();
    }
    this.log.info({ host: host.id, reason }, "host dropped; its children are rescheduled");
  }

  /** Drops hosts not heard from for longer than `timeoutMs`. */
  dropExpiredHosts(now: number, timeoutMs: number): void {
    for (const host of this.hosts.expired(now, timeoutMs)) this.dropHost(host, "keepalive timed out");
  }
}
