/** Query helpers every repository uses: INSERT returning the new id on every dialect, counts, pages. */
import type { Insertable, Kysely } from "kysely";
import type { DialectName } from "./database.js";
import type { ManagerDatabase } from "./schema.js";

type IdTable = Exclude<keyof ManagerDatabase, "job_scheduler_clusters" | "peer_traffic">;

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

/**
 * One page of a filtered query and the total it pages through: `count` runs the COUNT(*),
 * `rows` the ordered SELECT with the page's LIMIT and OFFSET.
 */
export async function pageOf<R>(
  page: { page: number; perPage: number },
  count: () => Promise<{ n: unknown }>,
  rows: (limit: number, offset: number) => Promise<R[]>,
): Promise<{ rows: R[]; total: number }> {
  const [total, found] = await Promise.all([count(), rows(page.perPage, (page.page - 1) * page.perPage)]);
  return { rows: found, total: toCount(total.n) };
}
