/** Every task the scheduler knows, by ID. */
import { KilnError } from "../../common/errors.js";
import { taskIdFor } from "../../common/task-id.js";
import type { DownloadSpec } from "../../api/common.js";
import type { Peer } from "./peer.js";
import { Task } from "./task.js";

export class TaskManager {
  private readonly byId = new Map<string, Task>();

  get(id: string): Task | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<Task> {
    return this.byId.values();
  }

  /** The task this download is, created when new. */
  forDownload(spec: DownloadSpec): Task {
    const id = taskIdFor(spec);
    let task = this.byId.get(id);
    if (!task) {
      task = new Task(id, spec);
      this.byId.set(id, task);
    }
    return task;
  }

  /** The task `id`, or NOT_FOUND. */
  task(id: string): Task {
    const task = this.byId.get(id);
    if (!task) throw new KilnError("NOT_FOUND", `unknown task ${id}`);
    return task;
  }

  /** Peer `peerId` of task `taskId`, or NOT_FOUND. */
  peer(taskId: string, peerId: string): Peer {
    const peer = this.task(taskId).peers.get(peerId);
    if (!peer) throw new KilnError("NOT_FOUND", `unknown peer ${peerId} on task ${taskId}`);
    return peer;
  }

  /** Forgets the task now (delete_task): the next download of it starts from nothing. */
  forget(task: Task): void {
    if (this.byId.get(task.id) === task) this.byId.delete(task.id);
    task.touch(); // long polls on it answer now
  }

  /** Forgets tasks with no peers and no activity for `ttlMs`; returns them. */
  forgetIdle(now: number, ttlMs: number): Task[] {
    const idle: Task[] = [];
    for (const task of this.byId.values()) if (task.peers.size === 0 && now - task.lastActivity > ttlMs) idle.push(task);
    for (const task of idle) this.byId.delete(task.id);
    return idle;
  }
}
