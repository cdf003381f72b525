/** Job rows as the Open API shows them (the field names and time format). */
import { JobResult, JobState, type JobView } from "../../api/jobs.js";
import { StoredPreheatArgs } from "../../api/preheat.js";
import { TaskJobArgs } from "../../api/tasks.js";
import type { ClusterRef } from "../../api/clusters.js";
import type { ClusterRow, JobRow } from "../db/schema.js";
import { showTime } from "../time.js";
import { viewArgs } from "./args.js";

export function clusterRef(c: Pick<ClusterRow, "id" | "created_at" | "updated_at" | "name">): ClusterRef {
  return { id: c.id, created_at: showTime(c.created_at), updated_at: showTime(c.updated_at), name: c.name };
}

export function readStoredArgs(row: JobRow): StoredPreheatArgs {
  return StoredPreheatArgs.parse(JSON.parse(row.args));
}

export function readTaskJobArgs(row: JobRow): TaskJobArgs {
  return TaskJobArgs.parse(JSON.parse(row.args));
}

export function readResult(row: JobRow): JobResult | null {
  if (!row.result) return null;
  const parsed = JobResult.safeParse(JSON.parse(row.result));
  return parsed.success ? parsed.data : null;
}

export function jobView(row: JobRow, clusters: ClusterRow[]): JobView {
  return {
    id: row.id,
    created_at: showTime(row.created_at),
    updated_at: showTime(row.updated_at),
    task_id: row.task_id,
    type: row.type,
    state: JobState.parse(row.state),
    args: row.type === "preheat" ? viewArgs(readStoredArgs(row)) : readTaskJobArgs(row),
    scheduler_clusters: clusters.map(clusterRef),
    bio: row.bio,
    user_id: row.user_id,
    result: readResult(row),
  };
}
