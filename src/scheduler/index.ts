import { createLogger, type Logger } from "../common/logger.js";
import type { ClusterConfig } from "../api/clusters.js";
import { SCHEDULER } from "../common/defaults.js";
import { startGarbageCollection } from "./gc-loop.js";
import { SchedulerService, defaultSchedulerOptions, type SchedulerOptions } from "./service.js";
import { buildSchedulerApi } from "./server.js";
import { OtherSchedulers } from "./other-schedulers.js";

export interface SchedulerConfig {
  host: string;
  port: number;
  options?: Partial<SchedulerOptions>;
  /** Required on every API call when set (KILN_CLUSTER_SECRET). */
  clusterSecret?: string;
}

export interface RunningScheduler {
  url: string;
  port: number;
  service: SchedulerService;
  /** The other schedulers of its cluster: set from the manager's keepalive replies. */
  others: OtherSchedulers;
  close(): Promise<void>;
}

export async function startScheduler(cfg: SchedulerConfig): Promise<RunningScheduler> {
  const log = createLogger("scheduler");
  const service = new SchedulerService(log, { ...defaultSchedulerOptions, ...cfg.options });
  const others = new OtherSchedulers(log, cfg.clusterSecret);
  const app = buildSchedulerApi(service, log, cfg.clusterSecret, others);
  if (!cfg.clusterSecret) log.warn("no KILN_CLUSTER_SECRET: anyone who reaches this scheduler can announce hosts and ask for preheats");
  await app.listen({ host: cfg.host, port: cfg.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : cfg.port;
  const stopGc = startGarbageCollection((now) => service.collectGarbage(now), SCHEDULER.gcIntervalMs, log);
  const url = `http://${cfg.host === "0.0.0.0" ? "127.0.0.1" : cfg.host}:${port}`;
  log.info({ event: "ready", port, url }, "scheduler listening");
  return {
    url,
    port,
    service,
    others,
    async close() {
      stopGc();
      await app.close();
    },
  };
}

/** The keepalive hook that applies the cluster's parent limits, set in the manager, to this scheduler. */
export function clusterConfigApplier(service: SchedulerService, log: Logger): (c: ClusterConfig) => void {
  return (c) => {
    const limits = { parentsPerSchedule: c.candidate_parent_limit, filterParentLimit: c.filter_parent_limit };
    if (service.applyParentLimits(limits)) log.info({ event: "cluster-config", ...limits }, "applied the cluster's parent limits");
  };
}
