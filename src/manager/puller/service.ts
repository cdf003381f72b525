/**
 * Pull schedules: create, read, list, update, delete, run now; and the loop that runs
 * the due ones (one manager of several claims each run through the database).
 */
import { Cron } from "croner";
import type { Logger } from "../../common/logger.js";
import type { CreatePullScheduleBody, PullScheduleView, UpdatePullScheduleBody } from "../../api/puller.js";
import { MIN_PULL_INTERVAL_MS, PullStatus } from "../../api/puller.js";
import type { Labels } from "../../api/peers.js";
import type { Store } from "../store.js";
import type { SecretBox } from "../auth/secret-box.js";
import type { PullScheduleRow } from "../db/schema.js";
import { conflict, notFound, unprocessable } from "../errors.js";
import { nowIso, showTime } from "../time.js";
import { inventoryNodes, runPullSchedule, type PullRunDeps, type PullSpec } from "./run.js";
import { joinedSince, mergeStatus } from "./joiners.js";

/** The Image Puller's default CACHING_INTERVAL_HOURS. */
export const DEFAULT_INTERVAL_HOURS = 1;
const DEFAULT_CONCURRENCY = 4;
/** A run that has not finished after this long is taken to have died with its manager. */
const RUN_STALE_MS = 60 * 60_000;

function readSpec(row: PullScheduleRow): PullSpec {
  return JSON.parse(row.spec) as PullSpec;
}

/** When the schedule runs next after `from` (never sooner than the floor, whatever a schedule stored before it had one). */
export function nextRunAfter(spec: Pick<PullSpec, "cron" | "interval_hours">, from: number): string {
  const next = spec.cron
    ? (new Cron(spec.cron).nextRun(new Date(from))?.getTime() ?? from + 24 * 3_600_000)
    : from + (spec.interval_hours ?? DEFAULT_INTERVAL_HOURS) * 3_600_000;
  return nowIso(Math.max(next, from + MIN_PULL_INTERVAL_MS));
}

/**
 * A cron that parses and whose runs are at least MIN_PULL_INTERVAL_MS apart. Only a
 * seconds field can bring two runs closer than a minute, and with two or more seconds
 * two of any three consecutive runs share a minute: three runs tell.
 */
function checkCron(expr: string | null | undefined): void {
  if (!expr) return;
  let runs: Date[];
  try {
    runs = new Cron(expr, { paused: true }).nextRuns(3);
  } catch (err) {
    throw unprocessable(`cron: ${(err as Error).message}`);
  }
  const gaps = runs.slice(1).map((r, i) => r.getTime() - runs[i]!.getTime());
  const shortest = Math.min(...gaps);
  if (shortest < MIN_PULL_INTERVAL_MS) {
    throw unprocessable(
      `cron: ${JSON.stringify(expr)} runs ${shortest / 1000} s apart; a pull schedule runs at most once a minute ` +
        `(give 5 fields, or one second in the seconds field, e.g. "0 */5 * * * *")`,
    );
  }
}

export class PullScheduleService {
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  /**
   * Per schedule, joined hosts whose own run ended without a status (it threw): not
   * tried again before the schedule's next whole run, so a failing run does not repeat
   * every tick.
   */
  private readonly joinFailed = new Map<number, Set<string>>();

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretBox,
    private readonly log: Logger,
    private readonly deps: Omit<PullRunDeps, "store" | "log">,
  ) {}

  private async checkClusters(ids: number[] | undefined): Promise<void> {
    if (!ids?.length) return;
    const known = new Set((await this.store.clusters.byIds([...new Set(ids)])).map((c) => c.id));
    const unknown = ids.filter((id) => !known.has(id));
    if (unknown.length) throw unprocessable(`scheduler_cluster_ids: unknown scheduler cluster ${unknown.join(", ")}`);
  }

  private sealCreds(b: { username?: string; password?: string }): string | null {
    return b.username || b.password ? this.secrets.seal(JSON.stringify({ username: b.username ?? "", password: b.password ?? "" })) : null;
  }

  async create(b: CreatePullScheduleBody): Promise<PullScheduleView> {
    checkCron(b.cron);
    await this.checkClusters(b.scheduler_cluster_ids);
    if (await this.store.pullSchedules.byName(b.name)) throw conflict(`a pull schedule named ${b.name} exists`);
    const spec: PullSpec = {
      images: b.images,
      interval_hours: b.cron ? null : (b.interval_hours ?? DEFAULT_INTERVAL_HOURS),
      cron: b.cron ?? null,
      node_selector: b.node_selector ?? {},
      insecure_registries: b.insecure_registries ?? [],
      concurrency: b.concurrency ?? DEFAULT_CONCURRENCY,
      scheduler_cluster_ids: b.scheduler_cluster_ids ?? [],
    };
    const enabled = b.enabled ?? true;
    const id = await this.store.pullSchedules.create({
      name: b.name,
      bio: b.bio ?? "",
      spec: JSON.stringify(spec),
      secret: this.sealCreds(b),
      enabled: enabled ? 1 : 0,
      // A new schedule runs at once, then every interval.
      next_run_at: enabled ? nowIso() : null,
    });
    this.log.info({ schedule: b.name, images: spec.images.length, selector: spec.node_selector }, "pull schedule created");
    this.kick();
    return this.get(id);
  }

  async update(id: number, b: UpdatePullScheduleBody): Promise<PullScheduleView> {
    const row = await this.store.pullSchedules.byId(id);
    if (!row) throw notFound(`pull schedule ${id} not found`);
    checkCron(b.cron);
    await this.checkClusters(b.scheduler_cluster_ids);
    if (b.name && b.name !== row.name && (await this.store.pullSchedules.byName(b.name))) throw conflict(`a pull schedule named ${b.name} exists`);
    const old = readSpec(row);
    const timing = b.cron !== undefined || b.interval_hours !== undefined;
    const spec: PullSpec = {
      images: b.images ?? old.images,
      interval_hours: b.cron ? null : (b.interval_hours ?? (timing ? DEFAULT_INTERVAL_HOURS : old.interval_hours)),
      cron: b.interval_hours !== undefined ? null : (b.cron ?? old.cron),
      node_selector: b.node_selector ?? old.node_selector,
      insecure_registries: b.insecure_registries ?? old.insecure_registries,
      concurrency: b.concurrency ?? old.concurrency,
      scheduler_cluster_ids: b.scheduler_cluster_ids ?? old.scheduler_cluster_ids,
    };
    const enabled = b.enabled ?? row.enabled === 1;
    const credsChanged = b.username !== undefined || b.password !== undefined;
    await this.store.pullSchedules.update(id, {
      ...(b.name ? { name: b.name } : {}),
      ...(b.bio !== undefined ? { bio: b.bio } : {}),
      spec: JSON.stringify(spec),
      ...(credsChanged ? { secret: this.sealCreds(b) } : {}),
      enabled: enabled ? 1 : 0,
      // A changed list or selector is checked now, not at the next interval.
      next_run_at: enabled ? nowIso() : null,
    });
    this.kick();
    return this.get(id);
  }

  async get(id: number): Promise<PullScheduleView> {
    const row = await this.store.pullSchedules.byId(id);
    if (!row) throw notFound(`pull schedule ${id} not found`);
    return view(row);
  }

  async list(q: { page: number; per_page: number }): Promise<{ items: PullScheduleView[]; total: number }> {
    const { rows, total } = await this.store.pullSchedules.list({ page: q.page, perPage: q.per_page });
    return { items: rows.map(view), total };
  }

  async delete(id: number): Promise<void> {
    if (!(await this.store.pullSchedules.delete(id))) throw notFound(`pull schedule ${id} not found`);
  }

  async runNow(id: number): Promise<PullScheduleView> {
    const row = await this.store.pullSchedules.byId(id);
    if (!row) throw notFound(`pull schedule ${id} not found`);
    await this.store.pullSchedules.update(id, { next_run_at: nowIso() });
    this.kick();
    return this.get(id);
  }

  start(everyMs: number): void {
    this.timer = setInterval(() => this.kick(), everyMs);
    this.timer.unref();
    this.kick();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Runs what is due now (one pass at a time). */
  private kick(): void {
    if (this.ticking) return;
    this.ticking = true;
    void this.tick()
      .catch((err) => this.log.warn({ err: (err as Error).message }, "pull schedules: tick failed"))
      .finally(() => {
        this.ticking = false;
      });
  }

  private async tick(): Promise<void> {
    for (const row of await this.store.pullSchedules.due(nowIso())) {
      if (!(await this.store.pullSchedules.claim(row.id, nowIso(Date.now() - RUN_STALE_MS)))) continue;
      this.joinFailed.delete(row.id);
      const spec = readSpec(row);
      const started = Date.now();
      const status = await this.run(row, spec);
      // The schedule may have been edited or run-now'd meanwhile: only the run's own fields are written.
      const latest = await this.store.pullSchedules.byId(row.id);
      if (!latest) continue;
      const rerun = latest.next_run_at !== null && latest.next_run_at > (row.next_run_at ?? "");
      await this.store.pullSchedules.update(row.id, {
        state: "idle",
        ...(status ? { status: JSON.stringify(status) } : {}),
        next_run_at: latest.enabled !== 1 ? null : rerun ? latest.next_run_at : nextRunAfter(readSpec(latest), started),
      });
    }
    await this.warmJoiners();
  }

  private async run(row: PullScheduleRow, spec: PullSpec, onlyHosts?: ReadonlySet<string>): Promise<PullStatus | null> {
    const creds = row.secret ? (JSON.parse(this.secrets.open(row.secret)) as { username?: string; password?: string }) : {};
    try {
      return await runPullSchedule({ ...this.deps, store: this.store, log: this.log }, spec, creds, onlyHosts);
    } catch (err) {
      this.log.warn({ schedule: row.name, err: (err as Error).message }, "pull schedule run failed");
      return null;
    }
  }

  /**
   * Warms nodes that joined an enabled schedule after its last run (or gained a matching
   * label) now, not at the next interval: a run over those nodes alone, merged into the
   * last run's status. The schedule's next run is left as it was.
   */
  private async warmJoiners(): Promise<void> {
    const { rows } = await this.store.pullSchedules.list({ page: 1, perPage: 100_000 });
    for (const row of rows) {
      if (row.enabled !== 1 || row.state !== "idle" || !row.status) continue;
      const last = PullStatus.safeParse(JSON.parse(row.status));
      if (!last.success) continue;
      const spec = readSpec(row);
      const failed = this.joinFailed.get(row.id);
      const joined = joinedSince(last.data, (await inventoryNodes(this.store, spec)).nodes).filter((n) => !failed?.has(n.hostId));
      if (!joined.length) continue;
      if (!(await this.store.pullSchedules.claim(row.id, nowIso(Date.now() - RUN_STALE_MS)))) continue;
      this.log.info({ schedule: row.name, nodes: joined.map((n) => `${n.hostname} (${n.ip})`) }, "pull schedule: warming nodes that joined since its last run");
      const status = await this.run(row, spec, new Set(joined.map((n) => n.hostId)));
      if (!status) this.joinFailed.set(row.id, new Set([...(failed ?? []), ...joined.map((n) => n.hostId)]));
      // A whole run that became due meanwhile still runs; this one only adds its nodes to the status.
      const latest = await this.store.pullSchedules.byId(row.id);
      if (!latest) continue;
      const base = latest.status ? PullStatus.safeParse(JSON.parse(latest.status)) : undefined;
      await this.store.pullSchedules.update(row.id, {
        state: "idle",
        ...(status && base?.success ? { status: JSON.stringify(mergeStatus(base.data, status)) } : {}),
      });
    }
  }
}

function view(row: PullScheduleRow): PullScheduleView {
  const spec = readSpec(row);
  const status = row.status ? PullStatus.safeParse(JSON.parse(row.status)) : undefined;
  return {
    id: row.id,
    created_at: showTime(row.created_at),
    updated_at: showTime(row.updated_at),
    name: row.name,
    bio: row.bio,
    images: spec.images,
    interval_hours: spec.interval_hours,
    cron: spec.cron,
    node_selector: spec.node_selector as Labels,
    has_credentials: row.secret !== null,
    insecure_registries: spec.insecure_registries,
    concurrency: spec.concurrency,
    scheduler_cluster_ids: spec.scheduler_cluster_ids,
    enabled: row.enabled === 1,
    state: row.state === "running" ? "running" : "idle",
    last_run_at: row.last_run_at ? showTime(row.last_run_at) : null,
    next_run_at: row.next_run_at ? showTime(row.next_run_at) : null,
    status: status?.success ? status.data : null,
  };
}
