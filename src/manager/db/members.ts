/** Schedulers and seed peers that registered with the manager, with their last keepalive. */
import type { Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId, pageOf } from "./insert.js";
import { containsText } from "./like.js";
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
    const r = await this.db.updateTable(this.table).set({ state: "active", last_keepalive_at: now, updated_at: now }).where("id", "=", id).executeTakeFirst();
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

  byId(id: number): Promise<MemberRow | undefined> {
    return this.db.selectFrom(this.table).selectAll().where("id", "=", id).executeTakeFirst();
  }

  /**
   * A page of members, newest keepalive first. `search` matches part of the host name
   * or IP; `freshSince` splits active (kept alive since then) from inactive.
   */
  async list(q: { page: number; perPage: number; clusterId?: number; search?: string; state?: "active" | "inactive"; freshSince: string }) {
    let base = this.db.selectFrom(this.table);
    if (q.clusterId !== undefined) base = base.where("scheduler_cluster_id", "=", q.clusterId);
    if (q.search) base = base.where((eb) => eb.or([containsText("hostname", q.search!), containsText("ip", q.search!)]));
    if (q.state === "active") base = base.where("state", "=", "active").where("last_keepalive_at", ">=", q.freshSince);
    if (q.state === "inactive") base = base.where((eb) => eb.or([eb("state", "!=", "active"), eb("last_keepalive_at", "<", q.freshSince)]));
    return pageOf(
      q,
      () => base.select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow(),
      (limit, offset) => base.selectAll().orderBy("last_keepalive_at", "desc").orderBy("id").limit(limit).offset(offset).execute(),
    );
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
