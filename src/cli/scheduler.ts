import type { Command } from "commander";
import { PORTS, SCHEDULER } from "../common/defaults.js";
import os from "node:os";
import { clusterConfigApplier, startScheduler } from "../scheduler/index.js";
import { defaultAdvertiseIp } from "../common/net.js";
import { createLogger } from "../common/logger.js";
import { startManagerKeepAlive } from "../api/manager-client.js";
import { assertPortsFree } from "./ports.js";
import { parsePort, parsePositiveInt } from "./options.js";
import { stopOnSignal } from "./signals.js";
import { assertSecretsSet, clusterSecretFromEnv, requireSecretOption } from "./cluster-secret.js";

interface SchedulerFlags {
  host: string;
  port: number;
  hostTimeoutMs: number;
  seedWaitMs: number;
  manager?: string;
  hostsReportMs: number;
  clusterId?: number;
  advertiseIp?: string;
  advertiseUrl?: string;
  requireSecret?: boolean;
}

export function registerSchedulerCommand(program: Command): void {
  program
    .command("scheduler")
    .description("run a scheduler: tracks hosts, tasks and peers, and picks parents")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--port <port>", "port to listen on", parsePort, PORTS.scheduler)
    .option("--host-timeout-ms <ms>", "drop hosts not heard from for this long", parsePositiveInt, SCHEDULER.hostTimeoutMs)
    .option("--seed-wait-ms <ms>", "how long peers wait for a triggered seed peer before going to the origin", parsePositiveInt, SCHEDULER.seedTriggerWaitMs)
    .option("--hosts-report-ms <ms>", "how often to send the hosts to the manager's peer inventory", parsePositiveInt, SCHEDULER.hostsReportMs)
    .option("--manager <url>", "register with this manager and keep alive (joins its scheduler cluster)")
    .option("--cluster-id <id>", "scheduler cluster to join (default: the manager's default cluster)", parsePositiveInt)
    .option("--advertise-ip <ip>", "IP the manager and peers reach this scheduler at (default: first non-loopback IPv4)")
    .option(
      "--advertise-url <url>",
      "URL the manager and peers reach this scheduler at (default http://<advertise-ip>:<port>); with several schedulers per cluster, tasks are ranked over these URLs, so a name that outlives the process (a StatefulSet pod's DNS name) keeps its tasks' ranking across restarts",
    )
    .option(...requireSecretOption("scheduler"))
    .action(async (opts: SchedulerFlags) => {
      if (opts.requireSecret) assertSecretsSet("scheduler");
      await assertPortsFree(opts.host, [{ port: opts.port, flag: "--port" }]);
      const clusterSecret = clusterSecretFromEnv();
      const s = await startScheduler({
        host: opts.host,
        port: opts.port,
        clusterSecret,
        options: {
          hostTimeoutMs: opts.hostTimeoutMs,
          seedTriggerWaitMs: opts.seedWaitMs,
        },
      });
      const log = createLogger("scheduler");
      const membership = opts.manager
        ? startManagerKeepAlive({
            managerUrl: opts.manager,
            kind: "scheduler",
            registration: {
              hostname: os.hostname(),
              ip: opts.advertiseIp ?? defaultAdvertiseIp(),
              port: s.port,
              scheduler_cluster_id: opts.clusterId,
              ...(opts.advertiseUrl ? { url: opts.advertiseUrl } : {}),
            },
            log,
            secret: clusterSecret,
            onClusterConfig: clusterConfigApplier(s.service, log),
            onOtherSchedulers: (urls) => s.others.set(urls),
            hostsReport: { snapshot: () => s.service.hostsReport(), everyMs: opts.hostsReportMs },
          })
        : undefined;
      stopOnSignal(async () => {
        await membership?.stop();
        await s.close();
      });
    });
}
