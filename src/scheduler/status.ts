/** The status view of a task: its layout and state, and every peer on it. */
import type { TaskStatus } from "../api/scheduler.js";
import type { Task } from "./resource/task.js";

export function taskStatus(task: Task): TaskStatus {
  return {
    task: task.info(),
    peers: [...task.peers.values()].map((p) => ({
      peerId: p.id,
      hostId: p.host.id,
      hostname: p.host.info.hostname,
      ip: p.host.info.ip,
      isSeed: p.host.isSeed,
      state: p.state,
      finishedPieces: p.pieces.size,
      error: p.error,
    })),
  };
}
