/** `kiln manager`: users, tokens, clusters and preheat jobs behind the Dragonfly Open API. */
import type { Command } from "commander";
import { PORTS } from "../common/defaults.js";
import { MANAGER } from "../manager/defaults.js";
import { startManager } from "../manager/index.js";
import { parsePort, parsePositiveInt } from "./options.js";
import { stopOnSignal } from "./signals.js";
import { StartupError, assertPortsFree } from "./ports.js";
import { KilnError } from "../common/errors.js";
import { assertSecretsSet, clusterSecretFromEnv, requireSecretOption } from "./cluster-secret.js";

interface ManagerFlags {
  host: string;
  port: number;
  dataDir?: string;
  databaseUrl?: string;
  redisUrl?: string;
  redisPrefix: string;
  jobLockMs: number;
  keepaliveMs: number;
  memberTimeoutMs: number;
  jobConcurrency: number;
  jobTimeoutMs: number;
  jobPollMs: number;
  sessionTtlMs: number;
  requireSecret?: boolean;
}

export function registerManagerCommand(program: Command): void {
  program
    .command("manager")
    .description("run the manager: the web console (/), its API (/api/v1) and the Open API (/oapi/v1) for preheat jobs, users and tokens, clusters")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--port <port>", "port to listen on", parsePort, PORTS.manager)
    .option(
      "--data-dir <dir>",
      `the SQLite database, the secret key and the first root password (default ${MANAGER.dataDir}; with an SQLite --database-url: its directory)`,
    )
    .option(
      "--database-url <url>",
      "sqlite:<path> | mysql://user:pass@host:3306/db | postgres://user:pass@host:5432/db (default sqlite:<data-dir>/manager.db; env KILN_DATABASE_URL)",
      process.env.KILN_DATABASE_URL,
    )
    .option(
      "--redis-url <url>",
      "redis://[user:password@]host:6379[/db]: job queue, job rate limit and sign-in limit shared by every manager replica " +
        "(default: in this process; env KILN_REDIS_URL)",
      process.env.KILN_REDIS_URL,
    )
    .option("--redis-prefix <prefix>", "prefix of every Redis key; the replicas of one installation share it", MANAGER.redisPrefix)
    .option(
      "--job-lock-ms <ms>",
      "with --redis-url: a job whose manager died moves to another replica after about this long",
      parsePositiveInt,
      MANAGER.jobLockMs,
    )
    .option("--keepalive-ms <ms>", "how often schedulers and seed peers should re-announce", parsePositiveInt, MANAGER.keepAliveMs)
    .option("--member-timeout-ms <ms>", "a scheduler or seed peer silent this long is inactive", parsePositiveInt, MANAGER.memberTimeoutMs)
    .option("--job-concurrency <n>", "preheat jobs run at once", parsePositiveInt, MANAGER.jobConcurrency)
    .option("--job-timeout-ms <ms>", "timeout of a job that sets none", parsePositiveInt, MANAGER.jobTimeoutMs)
    .option("--job-poll-ms <ms>", "how often a running job asks its scheduler for progress", parsePositiveInt, MANAGER.jobPollMs)
    .option("--session-ttl-ms <ms>", "how long a console sign-in lasts", parsePositiveInt, MANAGER.sessionTtlMs)
    .option(...requireSecretOption("manager"))
    .addHelpText(
      "after",
      "\nAt first start the manager creates the cluster cluster-1 and the user root. Root's password is\n" +
        "KILN_ROOT_PASSWORD if set; otherwise a random one is printed once on stderr and must be changed\n" +
        "at first sign-in (kiln token password). Create an Open API token with: kiln token create --scope job\n" +
        "With KILN_CLUSTER_SECRET set, schedulers and seed peers must present the same secret to register.\n",
    )
    .action(async (f: ManagerFlags) => {
      if (f.requireSecret) assertSecretsSet("manager");
      await assertPortsFree(f.host, [{ port: f.port, flag: "--port" }]);
      const m = await startManager({
        host: f.host,
        port: f.port,
        dataDir: f.dataDir,
        databaseUrl: f.databaseUrl,
        redisUrl: f.redisUrl || undefined,
        redisPrefix: f.redisPrefix,
        jobLockMs: f.jobLockMs,
        rootPassword: process.env.KILN_ROOT_PASSWORD || undefined,
        clusterSecret: clusterSecretFromEnv(),
        keepAliveMs: f.keepaliveMs,
        memberTimeoutMs: f.memberTimeoutMs,
        jobConcurrency: f.jobConcurrency,
        jobTimeoutMs: f.jobTimeoutMs,
        jobPollMs: f.jobPollMs,
        sessionTtlMs: f.sessionTtlMs,
      }).catch((err: unknown) => {
        // An unreachable Redis or a bad URL: one line, not a stack trace.
        throw err instanceof KilnError ? new StartupError(err.message) : err;
      });
      stopOnSignal(() => m.close());
    });
}
