/**
 * The manager's domain errors. They say what went wrong (a code and a message);
 * the HTTP edge (http/errors.ts) turns the code into a status and headers.
 */
import { KilnError } from "../common/errors.js";

export const badRequest = (message: string) => new KilnError("BAD_REQUEST", message);
export const unauthorized = () => new KilnError("UNAUTHORIZED", "Unauthorized");
export const forbidden = (message: string) => new KilnError("FORBIDDEN", message);
export const notFound = (message: string) => new KilnError("NOT_FOUND", message);
export const conflict = (message: string) => new KilnError("CONFLICT", message);
export const unprocessable = (message: string) => new KilnError("UNPROCESSABLE", message);
export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new KilnError("RATE_LIMITED", message, undefined, Math.max(1, Math.ceil(retryAfterSeconds)));
