/** Pull schedules: stored, listed, claimed for a run by one manager, and updated with what the run found. */
import { sql, type Kysely, type Updateable } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId, pageOf } from "./insert.js";
import type { ManagerDatabase, PullScheduleRow, PullSchedulesTable } from "./schema.js";
import { nowIso } from "../time.js";

export type NewPullSchedule = Pick<PullSchedulesTable, "name" | "bio" | "spec" | "secret" | "enabled" | "next_run_at">;

export class PullSchedulesRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
  ) {}

  create(s: NewPullSchedule): Promise<number> {
    const now = nowIso();
    return insertReturningId(this.db, this.dialect, "pull_schedules", { ...s, state: "idle", created_at: now, updated_at: now });
  }

  byId(id: number): Promise<PullScheduleRow | undefined> {
    return this.db.selectFrom("pull_schedules").selectAll().where("id", "=", id).executeTakeFirst();
  }

  byName(name: string): Promise<PullScheduleRow | undefined> {
    return this.db.selectFrom("pull_schedules").selectAll().where("name", "=", name).executeTakeFirst();
  }

  list(page: { page: number; perPage: number }): Promise<{ rows: PullScheduleRow[]; total: number }> {
    const q = this.db.selectFrom("pull_schedules");
    return pageOf(
      page,
      () => q.select(sql<number>`count(*)`.as("n")).executeTakeFirstOrThrow(),
      (limit, offset) => q.selectAll().orderBy("name").limit(limit).offset(offset).execute(),
    );
  }

  async update(id: number, set: Updateable<PullSchedulesTable>): Promise<void> {
    await this.db
      .updateTable("pull_schedules")
      .set({ ...set, updated_at: nowIso() })
      .where("id", "=", id)
      .execute();
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom("pull_schedules").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Enabled schedules whose next run is due. */
  due(now: string): Promise<PullScheduleRow[]> {
    return this.db.selectFrom("pull_schedules").selectAll().where("enabled", "=", 1).where("next_run_at", "<=", now).execute();
  }

  /**
   * Marks the schedule running if it is not (one manager of several wins); a run whose
   * manager died is taken over after `staleBefore`.
   */
  async claim(id: number, staleBefore: string): Promise<boolean> {
    const r = await this.db
      .updateTable("pull_schedules")
      .set({ state: "running", last_run_at: nowIso() })
      .where("id", "=", id)
      .where((eb) => eb.or([eb("state", "=", "idle"), eb("last_run_at", "<", staleBefore), eb("last_run_at", "is", null)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
