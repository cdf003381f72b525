/** `kiln manager`: database, bootstrap, HTTP API, job queue and runner. */
import { dirname, join, resolve } from "node:path";
import { parseDatabaseUrl } from "./db/database.js";
import { createLogger, type Logger } from "../common/logger.js";
import { MANAGER } from "./defaults.js";
import { openStore, type Store } from "./store.js";
import { bootstrap } from "./bootstrap.js";
import { Authenticator } from "./auth/authenticate.js";
import { openSharedState } from "./shared/state.js";
import { showRedisUrl } from "./shared/redis.js";
import { Readiness } from "./readiness.js";
import { JobRunner } from "./jobs/runner.js";
import { JobService } from "./jobs/service.js";
import { PullScheduleService } from "./puller/service.js";
import { buildManagerApi } from "./http/app.js";
import { findBuiltConsole } from "./http/console-static.js";
import { nowIso } from "./time.js";
import { SecretBox } from "./auth/secret-box.js";
import { forgetInitialPassword, initialPasswordFile, keepInitialPassword } from "./auth/initial-password.js";

export interface ManagerConfig {
  host: string;
  port: number;
  /** sqlite:<path> | mysql://… | postgres://…; default sqlite:<dataDir>/manager.db */
  databaseUrl?: string;
  dataDir?: string;
  /** Initial root password (KILN_ROOT_PASSWORD); generated and printed once when absent. */
  rootPassword?: string;
  keepAliveMs?: number;
  memberTimeoutMs?: number;
  jobConcurrency?: number;
  jobTimeoutMs?: number;
  jobPollMs?: number;
  /** redis://… (KILN_REDIS_URL): job queue, job rate limit and sign-in limit shared by every replica; none = in this process. */
  redisUrl?: string;
  /** Prefix of every Redis key (default "kiln"); replicas of one installation share it. */
  redisPrefix?: string;
  /** With Redis: a job whose manager stopped renewing its claim for this long moves to another replica. */
  jobLockMs?: number;
  /** Shared secret schedulers and seed peers must present (KILN_CLUSTER_SECRET); none = open membership. */
  clusterSecret?: string;
  /** How long a console sign-in lasts (default 24 h). */
  sessionTtlMs?: number;
  /** The built web console to serve at /; default dist/console of this checkout; false: none. */
  consoleDir?: string | false;
  /** Where the generated root password is written once (default: stderr). */
  announce?: (line: string) => void;
}

export interface RunningManager {
  url: string;
  port: number;
  store: Store;
  close(): Promise<void>;
}

export function defaultDatabaseUrl(dataDir: string = MANAGER.dataDir): string {
  return `sqlite:${join(resolve(dataDir), MANAGER.sqliteFile)}`;
}

/** Where the manager keeps its key and first password: --data-dir, else beside an SQLite file, else the default. */
function managerStateDir(cfg: ManagerConfig, databaseUrl: string): string {
  if (cfg.dataDir) return cfg.dataDir;
  const db = parseDatabaseUrl(databaseUrl);
  return db.dialect === "sqlite" && db.location !== ":memory:" ? dirname(db.location) : MANAGER.dataDir;
}

export async function startManager(cfg: ManagerConfig, log: Logger = createLogger("manager")): Promise<RunningManager> {
  const databaseUrl = cfg.databaseUrl ?? defaultDatabaseUrl(cfg.dataDir);
  const store = await openStore(databaseUrl);
  const closers: (() => Promise<void>)[] = [() => store.close()];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch((err) => log.warn({ err }, "close failed"));
  };
  try {
    if (store.migrated.length) log.info({ database: store.display, migrations: store.migrated }, "database migrated");
    const boot = await bootstrap(store, { rootPassword: cfg.rootPassword });
    const stateDir = managerStateDir(cfg, databaseUrl);
    const passwordFile = initialPasswordFile(stateDir);
    if (boot.generatedRootPassword) {
      const kept = await keepInitialPassword(passwordFile, boot.generatedRootPassword).catch((err: Error) => {
        log.warn({ err: err.message }, "could not keep the generated root password in a file; it is printed once only");
        return false;
      });
      const announce = cfg.announce ?? ((line: string) => process.stderr.write(`${line}\n`));
      announce(
        `kiln manager: created user "root" with password ${boot.generatedRootPassword} (it must be changed at first sign-in` +
          (kept ? `; until then it is also in ${passwordFile}, mode 0600)` : ")"),
      );
      log.info({ event: "root_created", user: MANAGER.rootUser }, "root user created; its generated password was printed on stderr");
    } else if (!(await store.users.byName(MANAGER.rootUser))?.must_change_password) {
      await forgetInitialPassword(passwordFile);
    }

    const memberTimeoutMs = cfg.memberTimeoutMs ?? MANAGER.memberTimeoutMs;
    const secrets = await SecretBox.load(stateDir);
    const runner = new JobRunner(store, secrets, log, { pollMs: cfg.jobPollMs ?? MANAGER.jobPollMs, memberTimeoutMs, clusterSecret: cfg.clusterSecret });
    const shared = await openSharedState({
      redis: cfg.redisUrl ? { url: cfg.redisUrl, prefix: cfg.redisPrefix ?? MANAGER.redisPrefix } : undefined,
      concurrency: cfg.jobConcurrency ?? MANAGER.jobConcurrency,
      lockMs: cfg.jobLockMs ?? MANAGER.jobLockMs,
      run: (id, signal) => runner.run(id, signal),
      log,
    });
    closers.push(() => shared.close());
    const jobs = new JobService(store, secrets, shared.queue, log, { defaultTimeoutMs: cfg.jobTimeoutMs ?? MANAGER.jobTimeoutMs, rateLimit: shared.rateLimit });
    const pulls = new PullScheduleService(store, secrets, log, {
      clusterSecret: cfg.clusterSecret,
      memberTimeoutMs,
      pollMs: cfg.jobPollMs ?? MANAGER.jobPollMs,
      imageTimeoutMs: MANAGER.pullImageTimeoutMs,
    });
    const readiness = new Readiness(
      [
        { key: "database", what: `the database (${store.dialect})`, ping: () => store.ping() },
        ...(shared.ping && cfg.redisUrl ? [{ key: "redis" as const, what: `Redis at ${showRedisUrl(cfg.redisUrl)}`, ping: shared.ping }] : []),
      ],
      MANAGER.readinessTimeoutMs,
    );
    const app = await buildManagerApi({
      store,
      auth: new Authenticator(store),
      jobs,
      pulls,
      log,
      keepAliveMs: cfg.keepAliveMs ?? MANAGER.keepAliveMs,
      sessionTtlMs: cfg.sessionTtlMs ?? MANAGER.sessionTtlMs,
      consoleDir: cfg.consoleDir === false ? undefined : (cfg.consoleDir ?? findBuiltConsole()),
      memberTimeoutMs,
      clusterSecret: cfg.clusterSecret,
      signInLimiter: shared.signIn,
      readiness,
    });
    closers.push(() => app.close());
    await app.listen({ host: cfg.host, port: cfg.port });

    // Members that stopped keeping alive are marked inactive in the records.
    const sweep = setInterval(
      () => {
        const before = nowIso(Date.now() - memberTimeoutMs);
        void Promise.all([store.schedulers.expire(before), store.seedPeers.expire(before)])
          .then(([s, p]) => (s || p ? log.info({ schedulers: s, seed_peers: p }, "members without keepalive marked inactive") : undefined))
          .catch((err) => log.warn({ err }, "member sweep failed"));
      },
      Math.max(500, Math.min(memberTimeoutMs / 2, 5_000)),
    );
    sweep.unref();
    closers.push(async () => clearInterval(sweep));

    await jobs.recover();
    pulls.start(MANAGER.pullTickMs);
    closers.push(async () => pulls.stop());
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : cfg.port;
    const url = `http://${cfg.host === "0.0.0.0" || cfg.host === "::" ? "127.0.0.1" : cfg.host}:${port}`;
    log.info({ event: "ready", port, url, database: store.dialect, queue: shared.kind }, "manager listening");
    return { url, port, store, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
