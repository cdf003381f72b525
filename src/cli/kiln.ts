import { Command, Option } from "commander";
import { StartupError, describeBindError } from "./ports.js";
import { KILN_VERSION } from "../common/defaults.js";

type Register = (program: Command) => void;

/**
 * One file per sub-command, loaded only when that sub-command runs, so that
 * `kiln get` does not pay for loading the manager's database drivers.
 */
const commands: Record<string, () => Promise<Register>> = {
  up: async () => (await import("./up.js")).registerUpCommand,
  manager: async () => (await import("./manager.js")).registerManagerCommand,
  scheduler: async () => (await import("./scheduler.js")).registerSchedulerCommand,
  peer: async () => (await import("./peer.js")).registerPeerCommand,
  get: async () => (await import("./get.js")).registerGetCommand,
  preheat: async () => (await import("./preheat.js")).registerPreheatCommand,
  task: async () => (await import("./task.js")).registerTaskCommand,
  image: async () => (await import("./task.js")).registerImageCommand,
  puller: async () => (await import("./puller.js")).registerPullerCommand,
  token: async () => (await import("./token.js")).registerTokenCommand,
  config: async () => (await import("./config.js")).registerConfigCommand,
  ca: async () => (await import("./ca.js")).registerCaCommand,
  snapshotter: async () => (await import("./snapshotter.js")).registerSnapshotterCommand,
  accelerate: async () => (await import("./accelerate.js")).registerAccelerateCommand,
};

/** The long-running commands: a socket error or an unhandled rejection is logged and survived there (process-guard.ts). */
const DAEMONS = new Set(["up", "manager", "scheduler", "peer", "snapshotter"]);

const program = new Command("kiln")
  .description("P2P preheating and distribution of container images and large files")
  .version(KILN_VERSION)
  .showHelpAfterError()
  .addOption(
    new Option("--log-format <format>", "log lines as JSON, or readable (default: readable on a terminal, JSON when piped)").choices(["json", "pretty"]),
  )
  .hook("preAction", async (cmd, action) => {
    const format = cmd.opts<{ logFormat?: string }>().logFormat;
    if (format) process.env.KILN_LOG_FORMAT = format;
    if (action.parent === cmd && DAEMONS.has(action.name())) {
      const [{ guardProcess }, { createLogger }] = await Promise.all([import("../common/process-guard.js"), import("../common/logger.js")]);
      guardProcess(createLogger("process"));
    }
  });

const wanted = process.argv[2];
const load = wanted === undefined ? undefined : commands[wanted];
// An unknown command or `--help` lists them all.
for (const register of load ? [load] : Object.values(commands)) (await register())(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Start-up failures (a taken port, a missing directory) are one line, not a stack trace.
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  const known = err instanceof StartupError || e.syscall === "listen" || e.code === "ENOENT" || e.code === "EACCES";
  if (!known) throw err;
  const line = e.syscall === "listen" ? describeBindError(e, e.address, e.port) : e.message;
  process.stderr.write(`kiln ${wanted ?? ""}: ${line}\n`.replace("kiln : ", "kiln: "));
  process.exit(2);
}
