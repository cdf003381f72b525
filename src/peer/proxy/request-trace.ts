/**
 * Where the time of one proxy answer goes, at debug level: milliseconds from the
 * request's arrival to each step (the download under way, its layout known, the
 * access rule applied, the response head written) and to the last byte, in one
 * "proxy answer timings" line per request. Costs nothing unless debug is on.
 */
import type { ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Logger } from "../../common/logger.js";

export type TraceStep = "registered" | "layout" | "access";

export interface RequestTrace {
  mark(step: TraceStep): void;
}

const OFF: RequestTrace = { mark: () => undefined };

export function traceRequest(res: ServerResponse, log: Logger, fields: Record<string, unknown>): RequestTrace {
  if (!log.isLevelEnabled("debug")) return OFF;
  const t0 = performance.now();
  const at = () => Math.round((performance.now() - t0) * 10) / 10;
  const steps: Record<string, number> = {};
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    steps.headMs ??= at();
    return writeHead(...args);
  }) as ServerResponse["writeHead"];
  res.once("close", () => log.debug({ ...fields, status: res.statusCode, ...steps, endMs: at(), complete: res.writableFinished }, "proxy answer timings"));
  return {
    mark: (step) => {
      steps[`${step}Ms`] ??= at();
    },
  };
}
