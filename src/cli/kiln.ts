import { Command } from "commander";

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
  token: async () => (await import("./token.js")).registerTokenCommand,
  config: async () => (await import("./config.js")).registerConfigCommand,
  ca: async () => (await import("./ca.js")).registerCaCommand,
};

const program = new Command("kiln")
  .description("P2P preheating and distribution of container images and large files")
  .version("0.1.0")
  .showHelpAfterError();

const wanted = process.argv[2];
const load = wanted === undefined ? undefined : commands[wanted];
// An unknown command or `--help` lists them all.
for (const register of load ? [load] : Object.values(commands)) (await register())(program);

await program.parseAsync(process.argv);
