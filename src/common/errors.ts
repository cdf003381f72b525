/** Errors that carry what a user or a remote component needs to know. */

export const ERROR_CODES = [
  "BAD_REQUEST",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "NOT_FOUND",
  "CONFLICT",
  "GONE",
  "UNPROCESSABLE",
  "RATE_LIMITED",
  "ORIGIN_STATUS",
  "ORIGIN_UNREACHABLE",
  "DIGEST_MISMATCH",
  "DISK_FULL",
  "NO_SCHEDULER",
  "UNAVAILABLE",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Whether a code from another component (a JSON error body) is one kiln knows. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && (ERROR_CODES as readonly string[]).includes(code);
}

export class KilnError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** HTTP status to answer with; for ORIGIN_STATUS it is the origin's status. */
    readonly status: number = statusFor(code),
    /** For RATE_LIMITED: when the caller may try again. */
    readonly retryAfterSeconds?: number,
    /** What went wrong underneath (a socket error, say), for code that must tell causes apart. */
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "KilnError";
  }
}

/** The errno code (ECONNREFUSED, ENOSPC…) of an error or of any error in its chain of causes. */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}

export function statusFor(code: ErrorCode): number {
  switch (code) {
    case "BAD_REQUEST":
      return 400;
    case "UNAUTHORIZED":
      return 401;
    case "FORBIDDEN":
      return 403;
    case "NOT_FOUND":
      return 404;
    case "CONFLICT":
      return 409;
    case "GONE":
      return 410;
    case "UNPROCESSABLE":
      return 422;
    case "RATE_LIMITED":
      return 429;
    case "ORIGIN_STATUS":
    case "ORIGIN_UNREACHABLE":
    case "DIGEST_MISMATCH":
      return 502;
    case "DISK_FULL":
    case "NO_SCHEDULER":
    case "UNAVAILABLE":
      return 503;
    case "INTERNAL":
      return 500;
  }
}

/** Human-readable cause of a Node network error, naming the errno where there is one. */
export function describeNetworkError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: unknown; hostname?: string };
  if (e && typeof e === "object" && e.cause && !e.code) return describeNetworkError(e.cause);
  const code = e?.code;
  if (isPlainHttpAnswer(err)) return "the server answered plain HTTP to a TLS (https) request";
  switch (code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host ${e.hostname ?? ""} cannot be resolved (${code})`.replace("host  ", "host ");
    case "ECONNREFUSED":
      return `connection refused (${code})`;
    case "ECONNRESET":
      return `connection reset by peer (${code})`;
    case "ETIMEDOUT":
      return `connection timed out (${code})`;
    case "EPIPE":
      return `connection closed while sending (${code})`;
    case "ENOSPC":
      return "no space left on device (ENOSPC)";
    default:
      return code ? `${e.message}` : String(e?.message ?? err);
  }
}

/** TLS spoken to a plain-HTTP port: OpenSSL's "wrong version number" (or "packet length too long"). */
export function isPlainHttpAnswer(err: unknown): boolean {
  const e = err as { code?: string; message?: string; cause?: unknown } | undefined;
  if (!e || typeof e !== "object") return false;
  if (e.code === "ERR_SSL_WRONG_VERSION_NUMBER" || e.code === "ERR_SSL_PACKET_LENGTH_TOO_LONG" || /wrong version number/i.test(e.message ?? "")) return true;
  return e.cause !== undefined && e.cause !== err && isPlainHttpAnswer(e.cause);
}

export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}
