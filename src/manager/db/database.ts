/** Opens the manager database named by a URL: sqlite:<path>, mysql://…, postgres://… */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, type Dialect } from "kysely";
import { KilnError } from "../../common/errors.js";
import type { ManagerDatabase } from "./schema.js";

export type DialectName = "sqlite" | "mysql" | "postgres";

export interface Database {
  db: Kysely<ManagerDatabase>;
  dialect: DialectName;
  /** The URL with any password masked, for logs. */
  display: string;
  close(): Promise<void>;
}

export interface DatabaseTarget {
  dialect: DialectName;
  /** File path (sqlite) or connection URL. */
  location: string;
}

export function parseDatabaseUrl(url: string): DatabaseTarget {
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (!path) throw new KilnError("BAD_REQUEST", "sqlite database URL needs a path, e.g. sqlite:./manager.db");
    return { dialect: "sqlite", location: path === ":memory:" ? path : resolve(path) };
  }
  if (/^mysql:\/\//i.test(url) || /^mariadb:\/\//i.test(url)) return { dialect: "mysql", location: url.replace(/^mariadb:/i, "mysql:") };
  if (/^postgres(ql)?:\/\//i.test(url)) return { dialect: "postgres", location: url };
  throw new KilnError("BAD_REQUEST", `unsupported database URL ${maskUrl(url)}: use sqlite:<path>, mysql://… or postgres://…`);
}

export function maskUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, "$1***@");
}

export async function openDatabase(url: string): Promise<Database> {
  const target = parseDatabaseUrl(url);
  const dialect = await createDialect(target);
  const db = new Kysely<ManagerDatabase>({ dialect });
  return { db, dialect: target.dialect, display: maskUrl(url), close: () => db.destroy() };
}

async function createDialect(t: DatabaseTarget): Promise<Dialect> {
  switch (t.dialect) {
    case "sqlite": {
      const { default: SQLite } = await import("better-sqlite3");
      if (t.location !== ":memory:") restrictSqliteFiles(t.location);
      const conn = new SQLite(t.location);
      conn.pragma("journal_mode = WAL");
      conn.pragma("foreign_keys = ON");
      conn.pragma("busy_timeout = 5000");
      return new SqliteDialect({ database: conn });
    }
    case "mysql": {
      const { createPool } = await import("mysql2");
      const pool = createPool({ uri: t.location, connectionLimit: 10, timezone: "Z", supportBigNumbers: true, bigNumberStrings: false });
      return new MysqlDialect({ pool });
    }
    case "postgres": {
      const { default: pg } = await import("pg");
      const pool = new pg.Pool({ connectionString: t.location, max: 10 });
      pool.on("error", () => undefined); // idle-client errors surface on the next query instead
      // A client lent out when the database goes away emits 'error' with no listener (an uncaught
      // exception that would end the manager); its queries fail with the same error anyway.
      pool.on("connect", (client) => client.on("error", () => undefined));
      return new PostgresDialect({ pool });
    }
  }
}

/**
 * The database holds password and token hashes and, while a job runs, sealed registry
 * credentials: only the manager's user may read it. SQLite gives its -wal and -shm
 * files the mode of the database file, so fixing that one (also for an older install) is enough.
 */
function restrictSqliteFiles(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, "a", 0o600));
  chmodSync(path, 0o600);
  for (const extra of [`${path}-wal`, `${path}-shm`]) if (existsSync(extra)) chmodSync(extra, 0o600);
}
