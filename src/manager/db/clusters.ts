/** Scheduler clusters. */
import type { Kysely } from "kysely";
import { ClusterConfig, ClusterScopes } from "../../api/clusters.js";
import type { DialectName } from "./database.js";
import { insertReturningId } from "./insert.js";
import type { ClusterRow, ManagerDatabase } from "./schema.js";
import { nowIso } from "../time.js";
import { MANAGER, SCHEDULER_CLUSTER_CONFIG_DEFAULTS } from "../defaults.js";

export function readClusterConfig(row: ClusterRow): ClusterConfig {
  let raw: unknown = {};
  try {
    raw = JSON.parse(row.config);
  } catch {
    /* a hand-edited row: fall back to defaults */
  }
  const parsed = ClusterConfig.partial().safeParse(raw);
  return { job_rate_limit: MANAGER.jobRateLimit, ...SCHEDULER_CLUSTER_CONFIG_DEFAULTS, ...(parsed.success ? parsed.data : {}) };
}

export function readClusterScopes(row: ClusterRow): ClusterScopes {
  let raw: unknown = {};
  try {
    raw = JSON.parse(row.scopes ?? "{}");
  } catch {
    /* a hand-edited row: no scopes */
  }
  const parsed = ClusterScopes.safeParse(raw);
  return parsed.success ? parsed.data : ClusterScopes.parse({});
}

type ClusterFields = { name?: string; bio?: string; config?: Partial<ClusterConfig>; scopes?: ClusterScopes; isDefault?: boolean };

export class ClustersRepo {
  constructor(
    private readonly db: Kysely<ManagerDatabase>,
    private readonly dialect: DialectName,
  ) {}

  list(): Promise<ClusterRow[]> {
    return this.db.selectFrom("scheduler_clusters").selectAll().orderBy("id").execute();
  }

  byId(id: number): Promise<ClusterRow | undefined> {
    return this.db.selectFrom("scheduler_clusters").selectAll().where("id", "=", id).executeTakeFirst();
  }

  byIds(ids: number[]): Promise<ClusterRow[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.db.selectFrom("scheduler_clusters").selectAll().where("id", "in", ids).orderBy("id").execute();
  }

  byName(name: string): Promise<ClusterRow | undefined> {
    return this.db.selectFrom("scheduler_clusters").selectAll().where("name", "=", name).executeTakeFirst();
  }

  async defaultCluster(): Promise<ClusterRow | undefined> {
    return (
      (await this.db.selectFrom("scheduler_clusters").selectAll().where("is_default", "=", 1).orderBy("id").executeTakeFirst()) ??
      (await this.db.selectFrom("scheduler_clusters").selectAll().orderBy("id").executeTakeFirst())
    );
  }

  async create(c: ClusterFields & { name: string }): Promise<number> {
    const now = nowIso();
    const id = await insertReturningId(this.db, this.dialect, "scheduler_clusters", {
      name: c.name,
      bio: c.bio ?? "",
      config: JSON.stringify({ job_rate_limit: MANAGER.jobRateLimit, ...SCHEDULER_CLUSTER_CONFIG_DEFAULTS, ...c.config }),
      scopes: JSON.stringify(c.scopes ?? ClusterScopes.parse({})),
      is_default: c.isDefault ? 1 : 0,
      created_at: now,
      updated_at: now,
    });
    if (c.isDefault) await this.makeDefault(id);
    return id;
  }

  async update(id: number, c: ClusterFields): Promise<void> {
    const row = await this.byId(id);
    if (!row) return;
    const config = c.config ? JSON.stringify({ ...readClusterConfig(row), ...c.config }) : undefined;
    await this.db
      .updateTable("scheduler_clusters")
      .set({
        updated_at: nowIso(),
        ...(c.name !== undefined ? { name: c.name } : {}),
        ...(c.bio !== undefined ? { bio: c.bio } : {}),
        ...(config ? { config } : {}),
        ...(c.scopes ? { scopes: JSON.stringify(c.scopes) } : {}),
      })
      .where("id", "=", id)
      .execute();
    if (c.isDefault) await this.makeDefault(id);
  }

  private async makeDefault(id: number): Promise<void> {
    await this.db.updateTable("scheduler_clusters").set({ is_default: 0 }).where("id", "!=", id).execute();
    await this.db.updateTable("scheduler_clusters").set({ is_default: 1 }).where("id", "=", id).execute();
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom("scheduler_clusters").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}
