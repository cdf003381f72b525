/** The peer inventory: the hosts schedulers report, refreshed by each report, listed with filters. */
import { sql, type Kysely } from "kysely";
import type { DialectName } from "./database.js";
import { insertReturningId, pageOf } from "./insert.js";
import { containsText } from "./like.js";
import type { ManagerDatabase, PeerRow, PeersTable } from "./schema.js";
import type { HostRecord } from "../../api/peers.js";
import { nowIso } from "../time.js";

export interface PeerFilter {
  clusterId?: number;
  q?: string;
  type?: "normal" | "super";
  state?: "active" | "inactive";
  /** Every pair must match. */
  labels?: Record<string, string>;
  /** Rows not refreshed since this time are inactive whatever their state column says (their scheduler went silent). */
  staleBefore: string;
  page: number;
  perPage: number;
}

function columns(h: HostRecord): Omit<PeersTable, "id" | "scheduler_cluster_id" | "scheduler_id" | "created_at" | "updated_at"> {
  return {
    host_id: h.id,
    hostname: h.hostname,
    ip: h.ip,
    port: h.ports.upload,
    proxy_port: h.ports.proxy ?? null,
    metrics_port: h.ports.metrics ?? null,
    type: h.type,
    idc: h.idc,
    location: h.location,
    labels: JSON.stringify(h.labels),
    version: h.version,
    state: "active",
    last_seen_at: h.lastSeenAt,
    task_count: h.stats.tasks,
    bytes_stored: h.stats.bytesStored,
    free_disk_bytes: h.stats.freeDiskBytes,
    uploaded_bytes: h.stats.uploadedBytes,
    swarm_bytes: h.stats.swarmBytes,
    origin_bytes: h.stats.originBytes,
  };
}

/** Adds to the cluster's bucket of the minute `at` falls in (created when new). */
async function addTraffic(db: Kysely<ManagerDatabase>, clusterId: number, at: string, add: { swarm: number; origin: number }): Promise<void> {
  const minute = `${at.slice(0, 16)}:00Z`;
  const r = await db
    .updateTable("peer_traffic")
    .set({ swarm_bytes: sql`swarm_bytes + ${add.swarm}`, origin_bytes: sql`origin_bytes + ${add.origin}` })
    .where("scheduler_cluster_id", "=", clusterId)
    .where("minute", "=", minute)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) > 0) return;
  await db.insertInto("peer_traffic").values({ scheduler_cluster_id: clusterId, minute, swarm_bytes: add.swarm, origin_bytes: add.origin }).execute();
}

export class PeersRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
  ) {}

  /**
   * A scheduler's full snapshot: its hosts are upserted as active, and the hosts it
   * reported before but not now (gone from it) become inactive.
   */
  async applyReport(clusterId: number, schedulerId: number, hosts: HostRecord[]): Promise<void> {
    const now = nowIso();
    const traffic = { swarm: 0, origin: 0 };
    await this.db.transaction().execute(async (tx) => {
      for (const h of hosts) {
        const set = { ...columns(h), scheduler_id: schedulerId, updated_at: now };
        const before = await tx
          .selectFrom("peers")
          .select(["id", "swarm_bytes", "origin_bytes"])
          .where("scheduler_cluster_id", "=", clusterId)
          .where("host_id", "=", h.id)
          .executeTakeFirst();
        // Counters only grow within one peer process; one that went down restarted at 0.
        const grew = (value: number, was: number | string | undefined) => (was === undefined ? value : value >= Number(was) ? value - Number(was) : value);
        traffic.swarm += grew(h.stats.swarmBytes, before?.swarm_bytes);
        traffic.origin += grew(h.stats.originBytes, before?.origin_bytes);
        if (before) await tx.updateTable("peers").set(set).where("id", "=", before.id).execute();
        else await insertReturningId(tx, this.dialect, "peers", { ...set, scheduler_cluster_id: clusterId, created_at: now });
      }
      await tx.updateTable("peers").set({ state: "inactive" }).where("scheduler_id", "=", schedulerId).where("updated_at", "<", now).execute();
      if (traffic.swarm > 0 || traffic.origin > 0) await addTraffic(tx, clusterId, now, traffic);
    });
  }

  /** Swarm and origin bytes per minute since `since`, over one cluster or all. */
  async traffic(since: string, clusterId?: number): Promise<{ minute: string; swarm: number; origin: number }[]> {
    let q = this.db
      .selectFrom("peer_traffic")
      .select(["minute", sql<number>`sum(swarm_bytes)`.as("swarm"), sql<number>`sum(origin_bytes)`.as("origin")])
      .where("minute", ">=", since);
    if (clusterId !== undefined) q = q.where("scheduler_cluster_id", "=", clusterId);
    const rows = await q.groupBy("minute").orderBy("minute").execute();
    return rows.map((r) => ({ minute: r.minute, swarm: Number(r.swarm), origin: Number(r.origin) }));
  }

  /** Drops traffic older than `before` (kept: the longest window the chart asks for). */
  async pruneTraffic(before: string): Promise<void> {
    await this.db.deleteFrom("peer_traffic").where("minute", "<", before).execute();
  }

  async list(f: PeerFilter): Promise<{ rows: PeerRow[]; total: number }> {
    let q = this.db.selectFrom("peers");
    if (f.clusterId !== undefined) q = q.where("scheduler_cluster_id", "=", f.clusterId);
    if (f.type) q = q.where("type", "=", f.type);
    if (f.q) {
      const text = f.q;
      q = q.where((eb) => eb.or([containsText("hostname", text), containsText("ip", text)]));
    }
    if (f.state === "active") q = q.where("state", "=", "active").where("updated_at", ">=", f.staleBefore);
    if (f.state === "inactive") q = q.where((eb) => eb.or([eb("state", "=", "inactive"), eb("updated_at", "<", f.staleBefore)]));
    // Labels are stored as JSON text; a pair matches as its exact `"key":"value"` text.
    for (const [k, v] of Object.entries(f.labels ?? {})) q = q.where(containsText("labels", JSON.stringify({ [k]: v }).slice(1, -1)));
    return pageOf(
      f,
      () => q.select(sql<number>`count(*)`.as("n")).executeTakeFirstOrThrow(),
      (limit, offset) => q.selectAll().orderBy("hostname").orderBy("id").limit(limit).offset(offset).execute(),
    );
  }
}
