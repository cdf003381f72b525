/** Jobs and the clusters each one targets. */
import type { Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId, pageOf } from "./insert.js";
import { containsText } from "./like.js";
import type { ClusterRow, JobRow, JobUpdate, ManagerDatabase, NewJob } from "./schema.js";
import { nowIso } from "../time.js";

export class JobsRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
  ) {}

  async create(job: NewJob, clusterIds: number[]): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const id = await insertReturningId(trx, this.dialect, "jobs", job);
      if (clusterIds.length) {
        await trx
          .insertInto("job_scheduler_clusters")
          .values(clusterIds.map((c) => ({ job_id: id, scheduler_cluster_id: c })))
          .execute();
      }
      return id;
    });
  }

  byId(id: number): Promise<JobRow | undefined> {
    return this.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async clustersOf(jobIds: number[]): Promise<Map<number, ClusterRow[]>> {
    const out = new Map<number, ClusterRow[]>(jobIds.map((id) => [id, []]));
    if (jobIds.length === 0) return out;
    const rows = await this.db
      .selectFrom("job_scheduler_clusters as j")
      .innerJoin("scheduler_clusters as c", "c.id", "j.scheduler_cluster_id")
      .select(["j.job_id", "c.id", "c.name", "c.bio", "c.config", "c.scopes", "c.is_default", "c.created_at", "c.updated_at"])
      .where("j.job_id", "in", jobIds)
      .orderBy("c.id")
      .execute();
    for (const r of rows) {
      const { job_id, ...cluster } = r;
      out.get(job_id)?.push(cluster);
    }
    return out;
  }

  async list(q: { page: number; perPage: number; state?: string; type?: string; userId?: number; url?: string }): Promise<{ rows: JobRow[]; total: number }> {
    let base = this.db.selectFrom("jobs");
    if (q.state) base = base.where("state", "=", q.state);
    if (q.type) base = base.where("type", "=", q.type);
    if (q.userId !== undefined) base = base.where("user_id", "=", q.userId);
    if (q.url) base = base.where(containsText("urls", q.url));
    return pageOf(
      q,
      () => base.select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow(),
      (limit, offset) => base.selectAll().orderBy("id", "desc").limit(limit).offset(offset).execute(),
    );
  }

  async update(id: number, set: JobUpdate): Promise<void> {
    await this.db
      .updateTable("jobs")
      .set({ ...set, updated_at: nowIso() })
      .where("id", "=", id)
      .execute();
  }

  /** Saves the progress of a job that has not ended yet (an ended job keeps its final result). */
  async saveProgress(id: number, result: string): Promise<void> {
    await this.db.updateTable("jobs").set({ result, updated_at: nowIso() }).where("id", "=", id).where("state", "=", "PENDING").execute();
  }

  /** Ends a job unless it already ended; returns whether this call ended it. */
  async finish(id: number, state: "SUCCESS" | "FAILURE", result: string): Promise<boolean> {
    const r = await this.db
      .updateTable("jobs")
      .set({ state, result, secret: null, updated_at: nowIso() })
      .where("id", "=", id)
      .where("state", "=", "PENDING")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom("jobs").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  pending(): Promise<JobRow[]> {
    return this.db.selectFrom("jobs").selectAll().where("state", "=", "PENDING").orderBy("id").execute();
  }
}
