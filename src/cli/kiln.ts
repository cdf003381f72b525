import { Command } from "commander";
import { registerSchedulerCommand } from "./scheduler.js";
import { registerPeerCommand } from "./peer.js";
import { registerGetCommand } from "./get.js";
import { registerUpCommand } from "./up.js";
import { registerConfigCommand } from "./config.js";
import { registerManagerCommand } from "./manager.js";
import { registerPreheatCommand } from "./preheat.js";
import { registerTokenCommand } from "./token.js";

const program = new Command("kiln")
  .description("P2P preheating and distribution of container images and large files")
  .version("0.1.0")
  .showHelpAfterError();

registerSchedulerCommand(program);
registerPeerCommand(program);
registerGetCommand(program);
registerUpCommand(program);
registerConfigCommand(program);
registerManagerCommand(program);
registerPreheatCommand(program);
registerTokenCommand(program);
// Further components register themselves here (one file per sub-command).

await program.parseAsync(process.argv);
