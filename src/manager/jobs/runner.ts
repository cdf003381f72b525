/**
 * Runs one job, whatever its type: opens its sealed credentials, holds it to its deadline, finds the
 * selected clusters' live schedulers, hands the work to the preheat (preheat.ts) or a task job
 * (task-jobs.ts), writes its result as it goes and records how it ended.
 */
import type { Logger } from "../../common/logger.js";
import type { JobResult } from "../../api/jobs.js";
import type { Store } from "../store.js";
import type { SecretBox } from "../auth/secret-box.js";
import type { JobRow } from "../db/schema.js";
import { MANAGER } from "../defaults.js";
import { nowIso } from "../time.js";
import { JobSecret } from "./args.js";
import { readResult, readStoredArgs, readTaskJobArgs } from "./view.js";
import { TaskJobs, type TaskJobType } from "./task-jobs.js";
import { dispatchTargets, type DispatchTarget } from "./preheat-dispatch.js";
import { runPreheat } from "./preheat.js";

export interface RunnerOptions {
  pollMs: number;
  memberTimeoutMs: number;
  /** Presented to the cluster's schedulers (KILN_CLUSTER_SECRET). */
  clusterSecret?: string;
}

function emptyResult(): JobResult {
  return { urls: [], progress: { total: 0, succeeded: 0, failed: 0 }, success_tasks: [], failure_tasks: [], log: [] };
}

export class JobRunner {
  constructor(
    private readonly store: Store,
    private readonly secrets: SecretBox,
    private readonly log: Logger,
    private readonly opts: RunnerOptions,
  ) {}

  async run(jobId: number, outer: AbortSignal): Promise<void> {
    const row = await this.store.jobs.byId(jobId);
    if (row?.state !== "PENDING") return;
    // Rows written before credentials were sealed hold plain JSON.
    const sealed = row.secret && !row.secret.startsWith("{") ? this.secrets.open(row.secret) : row.secret;
    const secret = JobSecret.parse(sealed ? JSON.parse(sealed) : {});
    const previous = readResult(row);
    this.log.info({ job: jobId, event: "job_run" }, previous ? "job resumed" : "job started");
    const result = emptyResult();
    if (previous) result.log.push(...previous.log, `${nowIso()} resumed after a manager restart`);

    // The job's own deadline aborts with a readable reason; an outer abort (delete, shutdown) passes its reason on.
    const controller = new AbortController();
    const timeoutSeconds = Math.round((Date.parse(row.deadline_at) - Date.parse(row.created_at)) / 1000);
    const timer = setTimeout(() => controller.abort(`job timed out after ${timeoutSeconds} s`), Math.max(0, Date.parse(row.deadline_at) - Date.now()));
    const onOuter = () => controller.abort(outer.reason);
    outer.addEventListener("abort", onOuter, { once: true });
    const signal = controller.signal;
    const writer = new ResultWriter(this.store, jobId, result);
    try {
      const preheat = row.type === "preheat";
      if (preheat) {
        await runPreheat(readStoredArgs(row), secret, result, {
          targets: () => this.targets(row, signal),
          changed: () => writer.schedule(),
          pollMs: this.opts.pollMs,
          signal,
        });
      } else {
        const targets = await this.targets(row, signal);
        const peers = this.store.peers;
        const jobs = new TaskJobs(
          targets,
          result,
          () => writer.schedule(),
          (t, schedulerId, report) => peers.applyReport(t.clusterId, schedulerId, report.hosts),
        );
        await jobs.run(row.type as TaskJobType, readTaskJobArgs(row), secret, signal);
      }
      if (outer.aborted) return; // deleted or shutting down: leave the row alone (a pending job resumes at next start)
      await writer.flush();
      // A preheat that reached no peer did nothing; a lookup or delete that found no holder did its job.
      const ok = result.failure_tasks.length === 0 && (result.success_tasks.length > 0 || !preheat) && !signal.aborted;
      if (!ok) {
        result.error =
          (signal.aborted ? String(signal.reason) : undefined) ??
          result.failure_tasks[0]?.description ??
          (result.urls.length === 0 ? "nothing to preheat" : "no peer preheated anything");
        if (result.success_tasks.length === 0 && result.failure_tasks.length === 0) result.log.push(`${nowIso()} ${result.error}`);
      }
      if (result.log.length > MANAGER.maxLogLines) result.log.splice(0, result.log.length - MANAGER.maxLogLines);
      const ended = await this.store.jobs.finish(jobId, ok ? "SUCCESS" : "FAILURE", JSON.stringify(result));
      if (ended) this.log.info({ job: jobId, state: ok ? "SUCCESS" : "FAILURE", error: result.error }, "job ended");
    } finally {
      clearTimeout(timer);
      outer.removeEventListener("abort", onOuter);
    }
  }

  /**
   * The selected clusters with their live schedulers. A cluster whose schedulers
   * are known but silent (e.g. the manager just restarted) gets up to one member
   * timeout to hear from them again; a cluster that never had one fails at once.
   */
  private async targets(row: JobRow, signal: AbortSignal): Promise<DispatchTarget[]> {
    const clusters = (await this.store.jobs.clustersOf([row.id])).get(row.id) ?? [];
    const deadline = Date.now() + this.opts.memberTimeoutMs;
    for (;;) {
      const schedulers = await this.store.schedulers.byCluster(clusters.map((c) => c.id));
      const targets = dispatchTargets(clusters, schedulers, this.opts.memberTimeoutMs, this.opts.clusterSecret);
      const waiting = targets.some((t) => t.schedulers.length === 0 && schedulers.some((s) => s.scheduler_cluster_id === t.clusterId));
      if (!waiting || Date.now() >= deadline || signal.aborted) return targets;
      await new Promise((r) => setTimeout(r, Math.min(500, this.opts.pollMs * 2)));
    }
  }
}

/** Writes a running job's result, at most one write in flight and one a second (progress changes every poll), the latest state always last. */
class ResultWriter {
  private running: Promise<void> = Promise.resolve();
  private dirty = false;
  private inFlight = false;
  private lastWrite = 0;

  constructor(
    private readonly store: Store,
    private readonly jobId: number,
    private readonly result: JobResult,
  ) {}

  schedule(): void {
    this.dirty = true;
    if (this.inFlight) return;
    this.inFlight = true;
    this.running = (async () => {
      while (this.dirty) {
        const wait = this.lastWrite + MANAGER.progressWriteMs - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        this.lastWrite = Date.now();
        this.dirty = false;
        if (this.result.log.length > MANAGER.maxLogLines) this.result.log.splice(0, this.result.log.length - MANAGER.maxLogLines);
        try {
          await this.store.jobs.saveProgress(this.jobId, JSON.stringify(this.result));
        } catch {
          /* progress is best effort; the final write reports errors */
        }
      }
      this.inFlight = false;
    })();
  }

  flush(): Promise<void> {
    return this.running;
  }
}
