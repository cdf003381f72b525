/** Jobs (preheat and the task jobs): create, read, list, update, delete, run, and resume after a restart. */
import { randomUUID } from "node:crypto";
import type { Logger } from "../../common/logger.js";
import type { CreateJobBody, JobResult, JobView, ListJobsQuery } from "../../api/jobs.js";
import type { Store } from "../store.js";
import type { SecretBox } from "../auth/secret-box.js";
import { readClusterConfig } from "../db/clusters.js";
import { nowIso } from "../time.js";
import { conflict, notFound, tooManyRequests, unprocessable } from "../errors.js";
import { argUrls, normalizeArgs, normalizeTaskArgs } from "./args.js";
import { jobView, readResult } from "./view.js";
import type { JobQueue } from "./queue.js";
import { RateLimiter, type JobRateLimit } from "./rate-limit.js";

export interface JobServiceOptions {
  defaultTimeoutMs: number;
  /** The job rate limit per cluster; default: counted by this manager alone. */
  rateLimit?: JobRateLimit;
}

export class JobService {
  private readonly limiter: JobRateLimit;

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretBox,
    private readonly queue: JobQueue,
    private readonly log: Logger,
    private readonly opts: JobServiceOptions,
  ) {
    this.limiter = opts.rateLimit ?? new RateLimiter();
  }

  async create(body: CreateJobBody, userId: number): Promise<JobView> {
    // Absent or empty (as Dragonfly reads it): every cluster.
    const wanted = body.scheduler_cluster_ids?.length ? body.scheduler_cluster_ids : undefined;
    const clusters = wanted ? await this.store.clusters.byIds([...new Set(wanted)]) : await this.store.clusters.list();
    if (wanted) {
      const known = new Set(clusters.map((c) => c.id));
      const unknown = wanted.filter((id) => !known.has(id));
      if (unknown.length) throw unprocessable(`scheduler_cluster_ids: unknown scheduler cluster ${unknown.join(", ")}`);
    }
    if (clusters.length === 0) throw unprocessable("scheduler_cluster_ids: there is no scheduler cluster to preheat in");
    const wait = await this.limiter.take(clusters.map((c) => ({ clusterId: c.id, rate: readClusterConfig(c).job_rate_limit })));
    if (wait > 0) {
      const names = clusters.map((c) => `${c.name} (${readClusterConfig(c).job_rate_limit} jobs/s)`).join(", ");
      throw tooManyRequests(`job rate limit reached for scheduler cluster ${names}; retry later`, wait);
    }
    const { stored, secret } = body.type === "preheat" ? normalizeArgs(body.args) : normalizeTaskArgs(body);
    const now = Date.now();
    const timeoutMs = stored.timeout !== undefined ? stored.timeout * 1000 : this.opts.defaultTimeoutMs;
    const id = await this.store.jobs.create(
      {
        task_id: `group_${randomUUID()}`,
        type: body.type,
        state: "PENDING",
        bio: body.bio ?? "",
        args: JSON.stringify(stored),
        secret: Object.keys(secret).length ? this.secrets.seal(JSON.stringify(secret)) : null,
        result: null,
        user_id: userId,
        urls: "type" in stored ? argUrls(stored).join("\n") : (stored.url ?? stored.task_id ?? ""),
        deadline_at: nowIso(now + timeoutMs),
        created_at: nowIso(now),
        updated_at: nowIso(now),
      },
      clusters.map((c) => c.id),
    );
    this.log.info({ job: id, type: body.type, clusters: clusters.map((c) => c.id) }, "job created");
    await this.queue.enqueue(id);
    return this.get(id);
  }

  async get(id: number): Promise<JobView> {
    const row = await this.store.jobs.byId(id);
    if (!row) throw notFound(`job ${id} not found`);
    const clusters = (await this.store.jobs.clustersOf([id])).get(id) ?? [];
    return jobView(row, clusters);
  }

  async list(q: ListJobsQuery): Promise<{ jobs: JobView[]; total: number }> {
    const { rows, total } = await this.store.jobs.list({ page: q.page, perPage: q.per_page, state: q.state, type: q.type, userId: q.user_id, url: q.url });
    const clusters = await this.store.jobs.clustersOf(rows.map((r) => r.id));
    return { jobs: rows.map((r) => jobView(r, clusters.get(r.id) ?? [])), total };
  }

  async update(id: number, set: { bio?: string }): Promise<JobView> {
    if (!(await this.store.jobs.byId(id))) throw notFound(`job ${id} not found`);
    await this.store.jobs.update(id, set.bio !== undefined ? { bio: set.bio } : {});
    return this.get(id);
  }

  async delete(id: number): Promise<void> {
    // The row first: a replica that picks the job up meanwhile finds nothing to run.
    if (!(await this.store.jobs.delete(id))) throw notFound(`job ${id} not found`);
    await this.queue.cancel(id, "job deleted");
  }

  /**
   * Ends a PENDING job as FAILURE now, saying who canceled it, and stops following it;
   * downloads the peers already started go on. 409 for a job that already ended.
   */
  async cancel(id: number, by: string): Promise<JobView> {
    const row = await this.store.jobs.byId(id);
    if (!row) throw notFound(`job ${id} not found`);
    if (row.state !== "PENDING") throw conflict(`job ${id} already ended (${row.state}); only a PENDING job can be canceled`);
    const result: JobResult = readResult(row) ?? { urls: [], progress: { total: 0, succeeded: 0, failed: 0 }, success_tasks: [], failure_tasks: [], log: [] };
    result.error = `canceled by ${by}`;
    result.log.push(`${nowIso()} canceled by ${by}`);
    if (await this.store.jobs.finish(id, "FAILURE", JSON.stringify(result))) {
      this.queue.cancel(id, result.error);
      this.log.info({ job: id, by }, "job canceled");
      return this.get(id);
    }
    const ended = await this.get(id); // it ended on its own meanwhile
    throw conflict(`job ${id} already ended (${ended.state}); only a PENDING job can be canceled`);
  }

  /** At start: pending jobs whose deadline passed end as FAILURE with the reason; the others run again. */
  async recover(): Promise<{ resumed: number; failed: number }> {
    let resumed = 0;
    let failed = 0;
    for (const row of await this.store.jobs.pending()) {
      if (Date.parse(row.deadline_at) <= Date.now()) {
        const previous: JobResult = readResult(row) ?? {
          urls: [],
          progress: { total: 0, succeeded: 0, failed: 0 },
          success_tasks: [],
          failure_tasks: [],
          log: [],
        };
        const error = "the manager was down when the job's timeout passed; it ended without finishing";
        previous.error = error;
        previous.log.push(`${nowIso()} ${error}`);
        if (await this.store.jobs.finish(row.id, "FAILURE", JSON.stringify(previous))) failed++;
      } else {
        await this.queue.enqueue(row.id); // a job another replica is running is not added twice
        resumed++;
      }
    }
    if (resumed || failed) this.log.info({ event: "jobs_recovered", resumed, failed }, "pending jobs from before the restart handled");
    return { resumed, failed };
  }
}
