/** get_task and delete_task on one scheduler: who holds a task, and making every holder drop it. */
import type { Logger } from "../common/logger.js";
import type { DeleteTaskReply, TaskHoldersReply } from "../api/scheduler.js";
import { hostTypeOf } from "../api/tasks.js";
import type { Host } from "./resource/host.js";
import type { Peer } from "./resource/peer.js";
import type { Resource } from "./resource/resource.js";

/** Peers that hold the task or are fetching it; failed and departed ones hold nothing. */
function holding(peer: Peer): boolean {
  return peer.state !== "failed" && peer.state !== "left";
}

export function taskHolders(resource: Resource, taskId: string): TaskHoldersReply {
  const task = resource.tasks.get(taskId);
  if (!task) return { holders: [] };
  const total = task.totalPieces;
  const holders = [...task.peers.values()].filter(holding).map((p) => ({
    id: p.id,
    task_id: task.id,
    host_id: p.host.id,
    hostname: p.host.info.hostname,
    ip: p.host.info.ip,
    port: p.host.info.uploadPort,
    host_type: hostTypeOf(p.host.isSeed),
    state: p.state === "succeeded" ? ("finished" as const) : ("downloading" as const),
    finished_pieces: p.pieces.size,
    total_pieces: total,
    content_length: task.contentLength,
    created_at: new Date(p.createdAt).toISOString(),
    updated_at: new Date(p.updatedAt).toISOString(),
  }));
  return { holders };
}

/**
 * Asks every live host with a peer on the task to drop it, all at once, and waits for
 * each answer; a host that is dead or does not answer is reported with the reason.
 * Then the scheduler forgets the task whatever the hosts said: no peer is offered as
 * a parent for it again, and the next download of it starts at the origin.
 */
export async function deleteTask(resource: Resource, taskId: string, log: Logger): Promise<DeleteTaskReply> {
  const task = resource.tasks.get(taskId);
  if (!task) return { hosts: [] };
  const hosts = new Map<string, Host>();
  for (const p of task.peers.values()) if (holding(p)) hosts.set(p.host.id, p.host);
  const answers = await Promise.all(
    [...hosts.values()].map(async (host) => {
      const who = { hostId: host.id, hostname: host.info.hostname, ip: host.info.ip, port: host.info.uploadPort, isSeed: host.isSeed };
      if (!host.alive) return { ...who, deleted: false, bytes: 0, error: "the host stopped announcing itself to the scheduler" };
      const r = await resource.peerControl.deleteTask(host, taskId);
      if ("error" in r) return { ...who, deleted: false, bytes: 0, error: `could not reach the peer: ${r.error}` };
      return { ...who, deleted: true, bytes: r.bytes };
    }),
  );
  for (const p of [...task.peers.values()]) task.leave(p);
  resource.tasks.forget(task);
  const failed = answers.filter((a) => !a.deleted).length;
  log.info({ task: taskId, hosts: answers.length, failed }, "task deleted");
  return { hosts: answers };
}
