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
    await this.db.transaction().execute(async (tx) => {
      for (const h of hosts) {
        const set = { ...columns(h), scheduler_id: schedulerId, updated_at: now };
        const r = await tx.updateTable("peers").set(set).where("scheduler_cluster_id", "=", clusterId).where("host_id", "=", h.id).executeTakeFirst();
        if (Number(r.numUpdatedRows) > 0) continue;
        await insertReturningId(tx, this.dialect, "peers", { ...set, scheduler_cluster_id: clusterId, created_at: now });
      }
      await tx.updateTable("peers").set({ state: "inactive" }).where("scheduler_id", "=", schedulerId).where("updated_at", "<", now).execute();
    });
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
