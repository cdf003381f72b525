import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

export type LogFormat = "json" | "pretty";

/** `KILN_LOG_FORMAT` (set by `--log-format`), else readable lines on a terminal and JSON when piped. */
export function logFormat(): LogFormat {
  const chosen = process.env.KILN_LOG_FORMAT;
  if (chosen === "json" || chosen === "pretty") return chosen;
  return process.stdout.isTTY ? "pretty" : "json";
}

/** Logs on stdout; components add their name as `component`. */
export function createLogger(component: string, level = process.env.KILN_LOG_LEVEL ?? "info"): Logger {
  const options = {
    level,
    base: { component },
    // Credentials never reach the log, whatever a call site passes.
    redact: {
      paths: ["headers.authorization", "headers.Authorization", "*.headers.authorization", "*.headers.Authorization", "password", "*.password"],
      censor: "[redacted]",
    },
  };
  if (logFormat() === "json") return pino(options);
  // In-process and synchronous (no worker thread): the CLI is one bundle, and a line is never lost at exit.
  return pino(
    options,
    pretty({
      sync: true,
      colorize: Boolean(process.stdout.isTTY),
      singleLine: true,
      ignore: "pid,hostname,component",
      messageFormat: "{component}: {msg}",
      translateTime: "HH:MM:ss.l",
    }),
  );
}
