/** The status view of a task: its layout and state, and every peer on it. */
import type { TaskStatus } from "../api/scheduler.js";
import type { Peer } from "./resource/peer.js";
import type { Task } from "./resource/task.js";

export function taskStatus(task: Task): TaskStatus {
  return {
    task: task.info(),
    peers: [...task.peers.values()].map((p) => ({
      peerId: p.id,
      hostId: p.host.id,
      hostname: p.host.info.hostname,
      ip: p.host.info.ip,
      port: p.host.info.uploadPort,
      isSeed: p.host.isSeed,
      state: p.state,
      finishedPieces: p.pieces.size,
      finishedBytes: heldBytes(task, p),
      error: p.error,
    })),
  };
}

/** Bytes of the pieces a peer holds: every piece is full length but the last. */
export function heldBytes(task: Pick<Task, "contentLength" | "pieceLength" | "totalPieces">, peer: Pick<Peer, "pieces">): number {
  const { contentLength, pieceLength, totalPieces } = task;
  if (contentLength === null || pieceLength === null || totalPieces === null || totalPieces === 0) return 0;
  const held = peer.pieces.size;
  const short = peer.pieces.has(totalPieces - 1) ? totalPieces * pieceLength - contentLength : 0;
  return held * pieceLength - short;
}
