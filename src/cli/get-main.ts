/**
 * `kiln get` on its own: the entry of dist/kiln-get.mjs, which bundles the command with
 * its dependencies (zod, commander, cli-progress) in one file. `kiln get` runs on every
 * node for every download, and loading one file instead of a few hundred modules (zod
 * alone is about 80) was most of its CPU. The full CLI registers the same command.
 */
import { Command } from "commander";
import { KILN_VERSION } from "../common/defaults.js";
import { registerGetCommand } from "./get.js";

const program = new Command("kiln").version(KILN_VERSION).showHelpAfterError();
registerGetCommand(program);
await program.parseAsync(process.argv);
