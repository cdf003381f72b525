import type { Command } from "commander";
import { PORTS } from "../common/defaults.js";
import { startScheduler } from "../scheduler/index.js";
import { parsePort } from "./options.js";
import { stopOnSignal } from "./signals.js";

export function registerSchedulerCommand(program: Command): void {
  program
    .command("scheduler")
    .description("run a scheduler: tracks hosts, tasks and peers, and picks parents")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--port <port>", "port to listen on", parsePort, PORTS.scheduler)
    .action(async (opts: { host: string; port: number }) => {
      const s = await startScheduler({ host: opts.host, port: opts.port });
      stopOnSignal(() => s.close());
    });
}
