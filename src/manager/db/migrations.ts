/** Schema migrations, written once for all three dialects (only the id column differs). */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider, type ColumnDefinitionBuilder } from "kysely";
import type { DialectName } from "./database.js";

type AnyDb = Kysely<unknown>;

function withId(dialect: DialectName) {
  return (c: ColumnDefinitionBuilder) => (dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement());
}
const idType = (dialect: DialectName) => (dialect === "postgres" ? "serial" : "integer");
/** Long JSON documents: TEXT is 64 KiB on MySQL. */
const longText = (dialect: DialectName) => (dialect === "mysql" ? sql`longtext` : sql`text`);
const ts = "varchar(40)" as const;

function initial(dialect: DialectName): Migration {
  const id = withId(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable("users")
        .addColumn("id", idType(dialect), id)
        .addColumn("name", "varchar(255)", (c) => c.notNull().unique())
        .addColumn("email", "varchar(255)", (c) => c.notNull().defaultTo(""))
        .addColumn("password_hash", "varchar(255)", (c) => c.notNull())
        .addColumn("state", "varchar(32)", (c) => c.notNull())
        .addColumn("must_change_password", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("updated_at", ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("sessions")
        .addColumn("id", idType(dialect), id)
        .addColumn("user_id", "integer", (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("token_hash", "varchar(64)", (c) => c.notNull().unique())
        .addColumn("expires_at", ts, (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("personal_access_tokens")
        .addColumn("id", idType(dialect), id)
        .addColumn("name", "varchar(255)", (c) => c.notNull())
        .addColumn("bio", "varchar(1024)", (c) => c.notNull().defaultTo(""))
        .addColumn("token_hash", "varchar(64)", (c) => c.notNull().unique())
        .addColumn("scopes", "varchar(255)", (c) => c.notNull())
        .addColumn("state", "varchar(32)", (c) => c.notNull())
        .addColumn("expired_at", ts, (c) => c.notNull())
        .addColumn("user_id", "integer", (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("updated_at", ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("scheduler_clusters")
        .addColumn("id", idType(dialect), id)
        .addColumn("name", "varchar(255)", (c) => c.notNull().unique())
        .addColumn("bio", "varchar(1024)", (c) => c.notNull().defaultTo(""))
        .addColumn("config", "varchar(4096)", (c) => c.notNull())
        .addColumn("is_default", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("updated_at", ts, (c) => c.notNull())
        .execute();
      for (const table of ["schedulers", "seed_peers"] as const) {
        await db.schema
          .createTable(table)
          .addColumn("id", idType(dialect), id)
          .addColumn("scheduler_cluster_id", "integer", (c) => c.notNull().references("scheduler_clusters.id").onDelete("cascade"))
          .addColumn("hostname", "varchar(255)", (c) => c.notNull())
          .addColumn("ip", "varchar(64)", (c) => c.notNull())
          .addColumn("port", "integer", (c) => c.notNull())
          .addColumn("url", "varchar(1024)", (c) => c.notNull())
          .addColumn("type", "varchar(32)", (c) => c.notNull().defaultTo(""))
          .addColumn("state", "varchar(32)", (c) => c.notNull())
          .addColumn("last_keepalive_at", ts, (c) => c.notNull())
          .addColumn("created_at", ts, (c) => c.notNull())
          .addColumn("updated_at", ts, (c) => c.notNull())
          .addUniqueConstraint(`${table}_member_unique`, ["scheduler_cluster_id", "hostname", "ip", "port"])
          .execute();
      }
      await db.schema
        .createTable("jobs")
        .addColumn("id", idType(dialect), id)
        .addColumn("task_id", "varchar(64)", (c) => c.notNull())
        .addColumn("type", "varchar(32)", (c) => c.notNull())
        .addColumn("state", "varchar(32)", (c) => c.notNull())
        .addColumn("bio", "varchar(1024)", (c) => c.notNull().defaultTo(""))
        .addColumn("args", longText(dialect), (c) => c.notNull())
        .addColumn("secret", longText(dialect))
        .addColumn("result", longText(dialect))
        .addColumn("user_id", "integer", (c) => c.references("users.id").onDelete("set null"))
        .addColumn("deadline_at", ts, (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("updated_at", ts, (c) => c.notNull())
        .execute();
      await db.schema.createIndex("jobs_state_idx").on("jobs").columns(["state", "type"]).execute();
      await db.schema
        .createTable("job_scheduler_clusters")
        .addColumn("job_id", "integer", (c) => c.notNull().references("jobs.id").onDelete("cascade"))
        .addColumn("scheduler_cluster_id", "integer", (c) => c.notNull().references("scheduler_clusters.id").onDelete("cascade"))
        .addPrimaryKeyConstraint("job_scheduler_clusters_pk", ["job_id", "scheduler_cluster_id"])
        .execute();
    },
    async down(db: AnyDb) {
      for (const t of ["job_scheduler_clusters", "jobs", "seed_peers", "schedulers", "scheduler_clusters", "personal_access_tokens", "sessions", "users"]) {
        await db.schema.dropTable(t).ifExists().execute();
      }
    },
  };
}

/**
 * Console: a role per user (root or guest; the user named root is root), and each
 * job's URLs in a column of their own, so that lists can search them.
 */
function rolesAndJobUrls(dialect: DialectName): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema
        .alterTable("users")
        .addColumn("role", "varchar(32)", (c) => c.notNull().defaultTo("guest"))
        .execute();
      await sql`update users set role = 'root' where name = 'root'`.execute(db);
      await db.schema.alterTable("jobs").addColumn("urls", longText(dialect)).execute();
      const jobs = await sql<{ id: number; args: string }>`select id, args from jobs`.execute(db);
      for (const j of jobs.rows) await sql`update jobs set urls = ${jobUrlsText(j.args)} where id = ${j.id}`.execute(db);
    },
    async down(db: AnyDb) {
      await db.schema.alterTable("jobs").dropColumn("urls").execute();
      await db.schema.alterTable("users").dropColumn("role").execute();
    },
  };
}

/** Scheduler clusters get scopes (which peers belong to them), kept as JSON like their config. */
function clusterScopes(dialect: DialectName): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable("scheduler_clusters").addColumn("scopes", longText(dialect)).execute();
    },
    async down(db: AnyDb) {
      await db.schema.alterTable("scheduler_clusters").dropColumn("scopes").execute();
    },
  };
}

/** The peer inventory: every host the schedulers report, one row per cluster and host ID. */
function peerInventory(dialect: DialectName): Migration {
  const id = withId(dialect);
  return {
    async up(db: AnyDb) {
      let t = db.schema
        .createTable("peers")
        .addColumn("id", idType(dialect), id)
        .addColumn("scheduler_cluster_id", "integer", (c) => c.notNull().references("scheduler_clusters.id").onDelete("cascade"))
        /** The scheduler that reported it last (not a foreign key: schedulers come and go). */
        .addColumn("scheduler_id", "integer", (c) => c.notNull())
        .addColumn("host_id", "varchar(200)", (c) => c.notNull())
        .addColumn("hostname", "varchar(255)", (c) => c.notNull())
        .addColumn("ip", "varchar(64)", (c) => c.notNull())
        .addColumn("port", "integer", (c) => c.notNull())
        .addColumn("proxy_port", "integer")
        .addColumn("metrics_port", "integer")
        .addColumn("type", "varchar(32)", (c) => c.notNull())
        .addColumn("idc", "varchar(255)", (c) => c.notNull().defaultTo(""))
        .addColumn("location", "varchar(255)", (c) => c.notNull().defaultTo(""))
        .addColumn("labels", longText(dialect), (c) => c.notNull())
        .addColumn("version", "varchar(64)", (c) => c.notNull().defaultTo(""))
        .addColumn("state", "varchar(32)", (c) => c.notNull())
        .addColumn("last_seen_at", ts, (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("updated_at", ts, (c) => c.notNull());
      for (const col of ["task_count", "bytes_stored", "free_disk_bytes", "uploaded_bytes", "swarm_bytes", "origin_bytes"]) {
        t = t.addColumn(col, "bigint", (c) => c.notNull().defaultTo(0));
      }
      await t.addUniqueConstraint("peers_host_unique", ["scheduler_cluster_id", "host_id"]).execute();
      await db.schema.createIndex("peers_scheduler").on("peers").column("scheduler_id").execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropTable("peers").execute();
    },
  };
}

/** Bytes peers got from the swarm and from origins, per cluster and minute (the overview chart). */
function peerTraffic(): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable("peer_traffic")
        .addColumn("scheduler_cluster_id", "integer", (c) => c.notNull().references("scheduler_clusters.id").onDelete("cascade"))
        .addColumn("minute", ts, (c) => c.notNull())
        .addColumn("swarm_bytes", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("origin_bytes", "bigint", (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint("peer_traffic_pk", ["scheduler_cluster_id", "minute"])
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropTable("peer_traffic").execute();
    },
  };
}

/** Pull schedules: image lists kept warm on the peers a node selector picks. */
function pullSchedules(dialect: DialectName): Migration {
  const id = withId(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable("pull_schedules")
        .addColumn("id", idType(dialect), id)
        .addColumn("name", "varchar(255)", (c) => c.notNull().unique())
        .addColumn("bio", "varchar(1024)", (c) => c.notNull().defaultTo(""))
        /** JSON: images, interval or cron, node selector, insecure registries, concurrency, clusters. */
        .addColumn("spec", longText(dialect), (c) => c.notNull())
        /** Sealed registry credentials, or null. */
        .addColumn("secret", longText(dialect))
        .addColumn("enabled", "integer", (c) => c.notNull().defaultTo(1))
        .addColumn("state", "varchar(32)", (c) => c.notNull().defaultTo("idle"))
        .addColumn("last_run_at", ts)
        .addColumn("next_run_at", ts)
        /** JSON: PullStatus of the last run. */
        .addColumn("status", longText(dialect))
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("updated_at", ts, (c) => c.notNull())
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropTable("pull_schedules").execute();
    },
  };
}

/** The URLs of stored job args (`url`, then `urls`), one per line: what the jobs list searches. */
export function jobUrlsText(storedArgs: string): string {
  try {
    const a = JSON.parse(storedArgs) as { url?: unknown; urls?: unknown };
    const urls = [a.url, ...(Array.isArray(a.urls) ? a.urls : [])].filter((u): u is string => typeof u === "string" && u.length > 0);
    return [...new Set(urls)].join("\n");
  } catch {
    return "";
  }
}

class CodeMigrations implements MigrationProvider {
  constructor(private readonly dialect: DialectName) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return {
      "0001_initial": initial(this.dialect),
      "0002_roles_job_urls": rolesAndJobUrls(this.dialect),
      "0005_cluster_scopes": clusterScopes(this.dialect),
      "0006_peer_inventory": peerInventory(this.dialect),
      "0007_peer_traffic": peerTraffic(),
      "0008_pull_schedules": pullSchedules(this.dialect),
    };
  }
}

/** Brings the schema up to date; returns the names of the migrations applied now. */
export async function migrateToLatest(db: Kysely<unknown>, dialect: DialectName): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: new CodeMigrations(dialect),
    migrationTableName: "kiln_migrations",
    migrationLockTableName: "kiln_migrations_lock",
    // Features land from parallel branches; a later-numbered migration may already be applied.
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw new Error(`database migration failed: ${(error as Error).message ?? String(error)}`);
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
