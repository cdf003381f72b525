import { pino, type Logger } from "pino";

export type { Logger };

/** JSON logs on stdout; components add their name as `component`. */
export function createLogger(component: string, level = process.env.KILN_LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { component },
    // Credentials never reach the log, whatever a call site passes.
    redact: { paths: ["headers.authorization", "headers.Authorization", "*.headers.authorization", "*.headers.Authorization", "password", "*.password"], censor: "[redacted]" },
  });
}
