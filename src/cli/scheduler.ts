import type { Command } from "commander";
import { PORTS, SCHEDULER } from "../common/defaults.js";
import { startScheduler } from "../scheduler/index.js";
import { parsePort, parsePositiveInt } from "./options.js";
import { stopOnSignal } from "./signals.js";

export function registerSchedulerCommand(program: Command): void {
  program
    .command("scheduler")
    .description("run a scheduler: tracks hosts, tasks and peers, and picks parents")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--port <port>", "port to listen on", parsePort, PORTS.scheduler)
    .option("--host-timeout-ms <ms>", "drop hosts not heard from for this long", parsePositiveInt, SCHEDULER.hostTimeoutMs)
    .option("--seed-wait-ms <ms>", "how long peers wait for a triggered seed peer before going to the origin", parsePositiveInt, SCHEDULER.seedTriggerWaitMs)
    .action(async (opts: { host: string; port: number; hostTimeoutMs: number; seedWaitMs: number }) => {
      const s = await startScheduler({
        host: opts.host,
        port: opts.port,
        options: { hostTimeoutMs: opts.hostTimeoutMs, seedTriggerWaitMs: opts.seedWaitMs },
      });
      stopOnSignal(() => s.close());
    });
}
