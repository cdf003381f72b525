/**
 * Controlling a host's peer: triggering it to fetch a task into its cache (a seed
 * peer sent to the origin for the first download of a task, or any peer a preheat
 * targets), or to drop one (delete_task); and picking the seed host a first download
 * goes to. Holds one control client per host, dropped when the host goes.
 */
import { PeerControlClient } from "../../api/peer-client.js";
import type { ImageImportRequest } from "../../api/peer.js";
import type { Host } from "./host.js";
import type { HostManager } from "./hosts.js";
import type { Task } from "./task.js";

/** Weight of sharing the nearby host's IDC against the seed's free upload share (0..1). */
const SAME_IDC_BONUS = 0.5;

export type ControlClientFactory = (baseUrl: string) => Pick<PeerControlClient, "baseUrl" | "prefetch" | "deleteTask" | "importImage">;

export class PeerControl {
  private readonly clients = new Map<string, ReturnType<ControlClientFactory>>();

  constructor(
    private readonly hosts: HostManager,
    private readonly newClient: ControlClientFactory = (baseUrl) => new PeerControlClient(baseUrl),
  ) {}

  /** The seed host to fetch `task` for a peer on `near`: not on the task yet, most free upload slots, same IDC preferred. */
  pick(task: Task, near: Host): Host | undefined {
    let best: Host | undefined;
    let bestScore = -Infinity;
    for (const h of this.hosts.seedHosts()) {
      if (!h.alive || task.hasPeerOn(h)) continue;
      const score = h.freeSlotShare + (h.info.idc && h.info.idc === near.info.idc ? SAME_IDC_BONUS : 0);
      if (score > bestScore) [best, bestScore] = [h, score];
    }
    return best;
  }

  /** Asks `host` to fetch `task`; resolves to an error message when it could not be asked. */
  async trigger(host: Host, task: Task): Promise<string | undefined> {
    try {
      await this.clientFor(host).prefetch({ taskId: task.id, download: task.spec }, host.info.controlToken);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Asks `host` to drop `taskId`: the bytes it freed (0 when it held nothing), or the reason it could not. */
  async deleteTask(host: Host, taskId: string): Promise<{ bytes: number; deleted: boolean } | { error: string }> {
    try {
      return await this.clientFor(host).deleteTask(taskId, host.info.controlToken);
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /** Has the host's peer import an image into its node's runtime (errors as thrown by the client). */
  importImage(host: Host, req: ImageImportRequest) {
    return this.clientFor(host).importImage(req, host.info.controlToken);
  }

  /** The host is gone: its client with it. */
  forget(host: Host): void {
    this.clients.delete(host.id);
  }

  private clientFor(host: Host): ReturnType<ControlClientFactory> {
    const baseUrl = `http://${host.info.ip}:${host.info.uploadPort}`;
    let client = this.clients.get(host.id);
    // A host that re-announced with another address gets a client for the new one.
    if (!client || client.baseUrl !== baseUrl) {
      client = this.newClient(baseUrl);
      this.clients.set(host.id, client);
    }
    return client;
  }
}
