/** Schedulers and seed peers that registered with the manager, with their last keepalive. */
import type { Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId } from "./insert.js";
import type { ManagerDatabase, MemberRow, MemberTable } from "./schema.js";
import { nowIso } from "../time.js";

export interface MemberInfo {
  clusterId: number;
  hostname: string;
  ip: string;
  port: number;
  url: string;
  type: string;
}

export class MembersRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
    readonly table: MemberTable,
  ) {}

  private findId(m: MemberInfo) {
    return this.db
      .selectFrom(this.table)
      .select("id")
      .where("scheduler_cluster_id", "=", m.clusterId)
      .where("hostname", "=", m.hostname)
      .where("ip", "=", m.ip)
      .where("port", "=", m.port)
      .executeTakeFirst();
  }

  /** Insert or refresh (same cluster, hostname, ip and port): registration doubles as keepalive. */
  async register(m: MemberInfo): Promise<number> {
    const now = nowIso();
    const existing = await this.findId(m);
    if (existing) {
      await this.db
        .updateTable(this.table)
        .set({ url: m.url, type: m.type, state: "active", last_keepalive_at: now, updated_at: now })
        .where("id", "=", existing.id)
        .execute();
      return existing.id;
    }
    try {
      return await insertReturningId(this.db, this.dialect, this.table, {
        scheduler_cluster_id: m.clusterId,
        hostname: m.hostname,
        ip: m.ip,
        port: m.port,
        url: m.url,
        type: m.type,
        state: "active",
        last_keepalive_at: now,
        created_at: now,
        updated_at: now,
      });
    } catch (err) {
      // Two registrations raced on the unique key: the other one won; refresh it.
      const again = await this.findId(m);
      if (!again) throw err;
      return again.id;
    }
  }

  /** False when the member is unknown (it must register again). */
  async keepAlive(id: number): Promise<boolean> {
    const now = nowIso();
    const r = await this.db
      .updateTable(this.table)
      .set({ state: "active", last_keepalive_at: now, updated_at: now })
      .where("id", "=", id)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async remove(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom(this.table).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  byCluster(clusterIds: number[]): Promise<MemberRow[]> {
    if (clusterIds.length === 0) return Promise.resolve([]);
    return this.db
      .selectFrom(this.table)
      .selectAll()
      .where("scheduler_cluster_id", "in", clusterIds)
      .orderBy("last_keepalive_at", "desc")
      .orderBy("id")
      .execute();
  }

  /** Marks members silent since `before` inactive; returns how many changed. */
  async expire(before: string): Promise<number> {
    const r = await this.db
      .updateTable(this.table)
      .set({ state: "inactive", updated_at: nowIso() })
      .where("state", "=", "active")
      .where("last_keepalive_at", "<", before)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }
}
