/** INSERT … and get the new id back, on dialects with (SQLite, PostgreSQL) and without (MySQL) RETURNING. */
import type { Insertable, Kysely } from "kysely";
import type { DialectName } from "./database.js";
import type { ManagerDatabase } from "./schema.js";

type IdTable = Exclude<keyof ManagerDatabase, "job_scheduler_clusters">;

export async function insertReturningId<T extends IdTable>(
  db: Kysely<ManagerDatabase>,
  dialect: DialectName,
  table: T,
  values: Insertable<ManagerDatabase[T]>,
): Promise<number> {
  // kysely cannot type a table chosen by a generic parameter; the values are typed above.
  const q = db.insertInto(table as "users").values(values as never);
  if (dialect === "mysql") {
    const r = await q.executeTakeFirstOrThrow();
    return Number(r.insertId);
  }
  const row = await q.returning("id").executeTakeFirstOrThrow();
  return Number(row.id);
}

/** COUNT(*) comes back as a number, a bigint or a string depending on the driver. */
export function toCount(v: unknown): number {
  return Number(v ?? 0);
}
