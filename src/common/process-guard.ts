/**
 * The last line of defence of a daemon: no input from the network ever ends a process
 * (DESIGN.md), and in `kiln up` one process holds the manager, the scheduler and both
 * peers. A promise rejection nobody handled, or a socket error nobody listened for, is
 * logged loudly and counted (kiln_process_survived_errors_total), and the process goes on.
 *
 * What still ends it: an exception thrown out of a callback that is not a network
 * error. That is a bug that stopped some code halfway, leaving state nobody can vouch
 * for; it is logged as fatal and the process exits, for its supervisor to restart. An
 * unhandled rejection is different: the async code that failed has already unwound (its
 * `finally` blocks ran), only its caller forgot to listen, so it is survived even when
 * it is a bug, and logged as one.
 */
import { Counter } from "prom-client";
import type { Logger } from "./logger.js";

/** Not in any registry by itself: each metrics endpoint of the process adds it (PeerMetrics). */
export const survivedErrors = new Counter({
  name: "kiln_process_survived_errors_total",
  help: "Unhandled rejections and uncaught socket errors the process logged and survived, by kind and cause (network or bug)",
  labelNames: ["kind", "cause"],
  registers: [],
});
// Zeros from the start, so that a dashboard sees the series before the first error.
survivedErrors.inc({ kind: "unhandled_rejection", cause: "network" }, 0);
survivedErrors.inc({ kind: "unhandled_rejection", cause: "bug" }, 0);
survivedErrors.inc({ kind: "uncaught_exception", cause: "network" }, 0);

/** Codes of errors a peer, a client or the network causes: a connection reset, refused, timed out, cut mid-stream. */
const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "ENOTCONN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPROTO",
  "ABORT_ERR",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_STREAM_WRITE_AFTER_END",
  "ERR_STREAM_ALREADY_FINISHED",
  "ERR_SOCKET_CLOSED",
  "ERR_SOCKET_CLOSED_BEFORE_CONNECTION",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
  "ERR_HTTP_REQUEST_TIMEOUT",
  "ERR_HTTP_SOCKET_ENCODING",
]);

/** A prefix of families of such codes: undici's socket errors, the HTTP parser's, OpenSSL's. */
const NETWORK_CODE_PREFIXES = ["UND_ERR_", "HPE_", "ERR_SSL_", "ERR_TLS_"];

/** Whether `err` (or an error it wraps as `cause`) came from a connection, not from kiln's own logic. */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (NETWORK_CODES.has(code) || NETWORK_CODE_PREFIXES.some((p) => code.startsWith(p))) return true;
  }
  return false;
}

export type SurvivedKind = "unhandled_rejection" | "uncaught_exception";

let installed = false;

/** Installs the guard (once per process, whatever the number of daemons in it). */
export function guardProcess(log: Logger): void {
  if (installed) return;
  installed = true;
  process.on("unhandledRejection", (reason) => {
    const cause = isNetworkError(reason) ? "network" : "bug";
    survivedErrors.inc({ kind: "unhandled_rejection", cause });
    log.error(
      { event: "survived", kind: "unhandled_rejection", cause, err: reason },
      cause === "network"
        ? "a promise failed on a network error and nothing handled it; logged and survived"
        : "BUG: a promise rejection nobody handled; logged and survived (the code that failed has already unwound)",
    );
  });
  process.on("uncaughtException", (err, origin) => {
    if (isNetworkError(err)) {
      survivedErrors.inc({ kind: "uncaught_exception", cause: "network" });
      log.error({ event: "survived", kind: "uncaught_exception", cause: "network", err }, "a socket error nobody listened for; logged and survived");
      return;
    }
    log.fatal({ event: "crashed", kind: origin, err }, "BUG: an uncaught exception; exiting");
    // Said on stderr too, synchronously: the log destination may buffer.
    process.stderr.write(`kiln: uncaught exception, exiting: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
