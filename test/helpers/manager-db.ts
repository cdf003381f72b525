/**
 * A fresh database per test run on each dialect the manager supports. MariaDB and
 * PostgreSQL come from KILN_TEST_MYSQL_URL / KILN_TEST_POSTGRES_URL (defaults:
 * root@127.0.0.1:3306/test and postgres@127.0.0.1:5432/test). Under CI=true a
 * database that cannot be reached fails the test; elsewhere it is skipped.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type DbKind = "sqlite" | "mariadb" | "postgres";
export const DB_KINDS: DbKind[] = ["sqlite", "mariadb", "postgres"];

export interface TestDatabase {
  kind: DbKind;
  url: string;
  drop(): Promise<void>;
}

const MYSQL_ADMIN = process.env.KILN_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
const PG_ADMIN = process.env.KILN_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

function unavailable(kind: DbKind, err: unknown): string {
  const msg = `${kind} is not reachable (${(err as Error).message}); set KILN_TEST_${kind === "mariadb" ? "MYSQL" : "POSTGRES"}_URL`;
  if (process.env.CI === "true") throw new Error(`CI: ${msg}`);
  return msg;
}

/** A new empty database, or the reason it cannot be had (outside CI). */
export async function createTestDatabase(kind: DbKind): Promise<TestDatabase | { skip: string }> {
  const name = `kiln_test_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  if (kind === "sqlite") {
    const dir = await mkdtemp(join(tmpdir(), "kiln-manager-db-"));
    return { kind, url: `sqlite:${join(dir, "manager.db")}`, drop: () => rm(dir, { recursive: true, force: true }) };
  }
  if (kind === "mariadb") {
    const { createConnection } = await import("mysql2/promise");
    let conn: Awaited<ReturnType<typeof createConnection>>;
    try {
      conn = await createConnection({ uri: MYSQL_ADMIN, connectTimeout: 5_000 });
    } catch (err) {
      return { skip: unavailable(kind, err) };
    }
    await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
    await conn.end();
    const u = new URL(MYSQL_ADMIN);
    u.pathname = `/${name}`;
    return {
      kind,
      url: u.toString(),
      async drop() {
        const c = await createConnection({ uri: MYSQL_ADMIN });
        await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
        await c.end();
      },
    };
  }
  const { default: pg } = await import("pg");
  const admin = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (err) {
    return { skip: unavailable(kind, err) };
  }
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(PG_ADMIN);
  u.pathname = `/${name}`;
  return {
    kind,
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}
