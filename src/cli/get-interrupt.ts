/**
 * `kiln get` interrupted (Ctrl-C, `kill`, `timeout`, a closed terminal): the partial
 * download beside -O is removed before the process ends, and the exit status is the
 * shell's for that signal (128 + its number). SIGKILL cannot be caught; nothing else
 * leaves the temporary file behind.
 */
import { GET } from "../common/defaults.js";
import type { PendingOutput } from "./get-output.js";

const EXIT_STATUS = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
type CaughtSignal = keyof typeof EXIT_STATUS;

/**
 * Until the returned function is called: on a signal, runs `beforeExit` (stops a
 * progress bar), removes `output`'s temporary file and exits; on any other exit
 * (`process.exit`, an uncaught error) removes it too.
 */
export function removeOnInterrupt(output: PendingOutput, beforeExit: () => void): () => void {
  let interrupted = false;
  const onExit = () => output.discardSync();
  const onSignal = (signal: CaughtSignal) => {
    if (interrupted) return process.exit(EXIT_STATUS[signal]); // a second Ctrl-C: no more waiting ('exit' still removes the file)
    interrupted = true;
    beforeExit();
    process.stderr.write(`kiln get: interrupted by ${signal}; the partial download is removed\n`);
    // A creation (or copy) of the temporary file still under way could recreate it after the removal.
    void output.settled(GET.interruptSettleMs).finally(() => process.exit(EXIT_STATUS[signal]));
  };
  const signals = Object.keys(EXIT_STATUS) as CaughtSignal[];
  for (const s of signals) process.on(s, onSignal);
  process.on("exit", onExit);
  return () => {
    for (const s of signals) process.off(s, onSignal);
    process.off("exit", onExit);
  };
}
