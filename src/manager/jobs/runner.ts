/** Runs one job: a preheat (resolve URLs, dispatch to every selected cluster) or a task job (task-jobs.ts); records what happened. */
import type { Logger } from "../../common/logger.js";
import { parseFilter } from "../../common/task-id.js";
import type { JobResult, TaskOutcome } from "../../api/jobs.js";
import type { StoredPreheatArgs } from "../../api/preheat.js";
import type { DownloadSpecInput } from "../../api/common.js";
import { resolveImage } from "../../registry/resolve.js";
import type { Store } from "../store.js";
import type { SecretBox } from "../auth/secret-box.js";
import { splitUserInfo, withUserInfo } from "../../common/credentials.js";
import type { JobRow } from "../db/schema.js";
import { MANAGER, PREHEAT_DEFAULTS } from "../defaults.js";
import { nowIso } from "../time.js";
import { JobSecret, argUrls } from "./args.js";
import { readResult, readStoredArgs, readTaskJobArgs } from "./view.js";
import { TaskJobs, type TaskJobType } from "./task-jobs.js";
import { dispatchTargets, dispatchUrl, type DispatchTarget } from "./dispatch.js";
import { eachLimit } from "../../common/each-limit.js";
import { UrlTracker, jobProgress } from "./progress.js";
import { hostLabel } from "../../common/host-label.js";

export interface RunnerOptions {
  pollMs: number;
  memberTimeoutMs: number;
  /** Presented to the cluster's schedulers (KILN_CLUSTER_SECRET). */
  clusterSecret?: string;
}

/** A URL ready to preheat, with what its download needs. */
interface WorkItem {
  /** As shown in results and logs: no user-info. */
  url: string;
  /** As fetched: with the user-info it was given with. */
  fetchUrl: string;
  headers: Record<string, string>;
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
        const args = readStoredArgs(row);
        const items = await this.resolve(args, secret, result, signal);
        result.urls = items.map((i) => i.url);
        const targets = await this.targets(row, signal);
        await this.dispatchAll(args, items, targets, result, writer, signal);
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

  /** File URLs as given; image manifests resolved to their config and layer blobs. */
  private async resolve(args: StoredPreheatArgs, secret: JobSecret, result: JobResult, signal: AbortSignal): Promise<WorkItem[]> {
    const headers = { ...args.headers, ...secret.headers };
    const urls = argUrls(args);
    const fetchUrl = (url: string) => withUserInfo(url, secret.userInfo?.[url]);
    if (args.type === "file") return urls.map((url) => ({ url, fetchUrl: fetchUrl(url), headers }));
    const items = new Map<string, WorkItem>();
    for (const manifestUrl of urls) {
      if (signal.aborted) break;
      try {
        const image = await resolveImage(fetchUrl(manifestUrl), {
          username: secret.username,
          password: secret.password,
          headers,
          platform: args.platform || undefined,
          signal,
        });
        result.log.push(
          `${nowIso()} resolved ${image.name}${image.platform ? ` for ${image.platform}` : ""} to manifest ${image.manifestDigest}: config and ${image.layers.length} layer(s)`,
        );
        for (const url of image.blobUrls) {
          const bare = splitUserInfo(url).url;
          if (!items.has(bare)) items.set(bare, { url: bare, fetchUrl: url, headers: image.headers });
        }
      } catch (err) {
        if (signal.aborted) break;
        const message = `cannot resolve image ${manifestUrl}: ${(err as Error).message}`;
        result.log.push(`${nowIso()} ${message}`);
        result.failure_tasks.push({ url: manifestUrl, task_id: "", scheduler_cluster_id: 0, hostname: "", ip: "", description: message });
        result.error ??= message;
      }
    }
    return [...items.values()];
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

  private async dispatchAll(
    args: StoredPreheatArgs,
    items: WorkItem[],
    targets: DispatchTarget[],
    result: JobResult,
    writer: ResultWriter,
    signal: AbortSignal,
  ): Promise<void> {
    const log = (line: string) => result.log.push(`${nowIso()} ${line}`);
    const pairs = targets.flatMap((target) =>
      items.map((item) => ({ target, item, tracker: new UrlTracker(item.url, target.clusterId, target.clusterName, log) })),
    );
    result.progress.total = pairs.length;
    result.tasks = pairs.map((p) => p.tracker.view);
    const update = () => {
      result.progress = jobProgress(result.progress, result.tasks ?? []);
      writer.schedule();
    };
    update();
    const filters = parseFilter(args.filteredQueryParams ?? PREHEAT_DEFAULTS.filteredQueryParams);
    await eachLimit(pairs, args.concurrent_task_count ?? MANAGER.concurrentTaskCount, async ({ target, item, tracker }) => {
      if (signal.aborted) return;
      const download: DownloadSpecInput = {
        url: item.fetchUrl,
        headers: item.headers,
        tag: args.tag ?? "",
        application: args.application ?? "",
        filteredQueryParams: filters,
        // Only an explicit piece length: the default one is not part of the task ID (kiln get / pulls meet the same task).
        ...(args.pieceLength !== undefined ? { pieceLength: args.pieceLength } : {}),
      };
      let failed = false;
      await dispatchUrl(target, {
        displayUrl: item.url,
        request: {
          download,
          scope: args.scope ?? "single_seed_peer",
          ...(args.ips ? { ips: args.ips } : {}),
          ...(args.count !== undefined ? { count: args.count } : {}),
          ...(args.percentage !== undefined ? { percentage: args.percentage } : {}),
          ...(args.concurrent_peer_count !== undefined ? { concurrentPeerCount: args.concurrent_peer_count } : {}),
        },
        signal,
        pollMs: this.opts.pollMs,
        tracker: {
          asked: (reply) => {
            tracker.asked(reply);
            update();
          },
          status: (status) => {
            tracker.status(status);
            update();
          },
          settle: (hostId, ok, reason) => tracker.settle(hostId, ok, reason),
        },
        onOutcome: (o: TaskOutcome, ok: boolean) => {
          if (ok) result.success_tasks.push(o);
          else {
            failed = true;
            result.failure_tasks.push(o);
            const where = o.hostname ? ` on ${hostLabel(o)}` : "";
            result.log.push(`${nowIso()} [${target.clusterName}] ${o.url}${where}: ${o.description}`);
          }
          writer.schedule();
        },
      });
      if (failed) result.progress.failed++;
      else result.progress.succeeded++;
      tracker.finish(failed);
      update();
    });
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
