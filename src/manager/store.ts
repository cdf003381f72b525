/** The manager's database, migrated, with one repository per table group. */
import { openDatabase, type DialectName } from "./db/database.js";
import { migrateToLatest } from "./db/migrations.js";
import { UsersRepo } from "./db/users.js";
import { TokensRepo } from "./db/tokens.js";
import { ClustersRepo } from "./db/clusters.js";
import { MembersRepo } from "./db/members.js";
import { JobsRepo } from "./db/jobs.js";
import { PeersRepo } from "./db/peers.js";
import { PullSchedulesRepo } from "./db/pull-schedules.js";
import { sql, type Kysely } from "kysely";
import type { ManagerDatabase } from "./db/schema.js";

export interface Store {
  db: Kysely<ManagerDatabase>;
  dialect: DialectName;
  display: string;
  users: UsersRepo;
  tokens: TokensRepo;
  clusters: ClustersRepo;
  schedulers: MembersRepo;
  seedPeers: MembersRepo;
  jobs: JobsRepo;
  peers: PeersRepo;
  pullSchedules: PullSchedulesRepo;
  /** Migrations applied by this open. */
  migrated: string[];
  /** Resolves when the database answered `SELECT 1` (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openStore(url: string): Promise<Store> {
  const database = await openDatabase(url);
  const { db, dialect } = database;
  let migrated: string[];
  try {
    migrated = await migrateToLatest(db as unknown as Kysely<unknown>, dialect);
  } catch (err) {
    await database.close();
    throw err;
  }
  return {
    db,
    dialect,
    display: database.display,
    users: new UsersRepo(db, dialect),
    tokens: new TokensRepo(db, dialect),
    clusters: new ClustersRepo(db, dialect),
    schedulers: new MembersRepo(db, dialect, "schedulers"),
    seedPeers: new MembersRepo(db, dialect, "seed_peers"),
    jobs: new JobsRepo(db, dialect),
    peers: new PeersRepo(db, dialect),
    pullSchedules: new PullSchedulesRepo(db, dialect),
    migrated,
    ping: async () => {
      await sql`SELECT 1`.execute(db);
    },
    close: () => database.close(),
  };
}
