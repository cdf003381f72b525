/**
 * One URL on one cluster: ask a scheduler of the cluster to preheat it, then
 * follow the task until every host asked has the content or has failed.
 */
import { KilnError } from "../../common/errors.js";
import { rendezvousRank } from "../../common/rendezvous.js";
import { taskIdFor } from "../../common/task-id.js";
import { DownloadSpec } from "../../api/common.js";
import { SchedulerClient } from "../../api/scheduler-client.js";
import type { PreheatRequestInput, PreheatReply, TaskStatus } from "../../api/scheduler.js";
import type { TaskOutcome } from "../../api/jobs.js";
import type { ClusterRow, MemberRow } from "../db/schema.js";

export interface DispatchTarget {
  clusterId: number;
  clusterName: string;
  /** Scheduler API URLs of the cluster's active schedulers, freshest first. */
  schedulers: string[];
  /** Their ids in the manager, in the same order. */
  schedulerIds?: number[];
  clusterSecret?: string;
}

/** Each cluster with its schedulers that kept alive within `memberTimeoutMs`, freshest first (as `schedulers` come). */
export function dispatchTargets(
  clusters: Pick<ClusterRow, "id" | "name">[],
  schedulers: MemberRow[],
  memberTimeoutMs: number,
  clusterSecret: string | undefined,
  now = Date.now(),
): DispatchTarget[] {
  return clusters.map((c) => {
    const live = schedulers.filter((s) => s.scheduler_cluster_id === c.id && s.state === "active" && Date.parse(s.last_keepalive_at) >= now - memberTimeoutMs);
    return { clusterId: c.id, clusterName: c.name, clusterSecret, schedulers: live.map((s) => s.url), schedulerIds: live.map((s) => s.id) };
  });
}

export interface DispatchOptions {
  request: PreheatRequestInput;
  /** The URL as results and logs show it (without credentials). */
  displayUrl: string;
  signal: AbortSignal;
  pollMs: number;
  /** Called with each host's outcome as soon as it is known. */
  onOutcome: (o: TaskOutcome, ok: boolean) => void;
  /** Follows the hosts' progress (preheat-progress.ts's UrlTracker). */
  tracker?: DispatchTracker;
}

export interface DispatchTracker {
  asked(reply: PreheatReply): void;
  status(status: TaskStatus): void;
  settle(hostId: string, ok: boolean, reason: string): void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/** Asks the cluster's schedulers in turn until one answers; a scheduler's own refusal is final. */
export async function askScheduler<T>(target: DispatchTarget, call: (client: SchedulerClient) => Promise<T>): Promise<{ client: SchedulerClient; reply: T }> {
  if (target.schedulers.length === 0) {
    throw new KilnError("NO_SCHEDULER", `cluster ${target.clusterName} has no active scheduler`);
  }
  let last: unknown;
  for (const url of target.schedulers) {
    const client = new SchedulerClient(url, target.clusterSecret);
    try {
      return { client, reply: await call(client) };
    } catch (err) {
      last = err;
      if (!(err instanceof KilnError && err.code === "UNAVAILABLE" && /unreachable/.test(err.message))) break;
    }
  }
  const msg = last instanceof Error ? last.message : String(last);
  throw new KilnError("UNAVAILABLE", `scheduler of cluster ${target.clusterName}: ${msg}`);
}

/**
 * The cluster's schedulers in the order the task's peers pick them: its rendezvous
 * ranking over their URLs (peer/scheduler-ring.ts ranks the same way), owner first.
 */
export function ownerFirst(target: DispatchTarget, taskId: string): DispatchTarget {
  const schedulers = rendezvousRank(taskId, target.schedulers);
  const ids = target.schedulerIds;
  return { ...target, schedulers, ...(ids ? { schedulerIds: schedulers.map((u) => ids[target.schedulers.indexOf(u)] ?? 0) } : {}) };
}

/** Preheats at the task's scheduler: the first live one of its ranking, or the one it names as having the task. */
async function preheatAtOwner(target: DispatchTarget, request: DispatchOptions["request"]): Promise<{ client: SchedulerClient; reply: PreheatReply }> {
  const asked = await askScheduler(target, (c) => c.preheat(request));
  if (asked.reply.owner === undefined) return asked;
  const client = new SchedulerClient(asked.reply.owner, target.clusterSecret);
  return { client, reply: await client.preheat(request) };
}

/** A scheduler that stopped answering: polls go on at the next live one of the task's ranking, where its peers register again. */
function isUnreachable(err: unknown): boolean {
  return err instanceof KilnError && err.code === "UNAVAILABLE" && / unreachable: /.test(err.message);
}

export async function dispatchUrl(target: DispatchTarget, opts: DispatchOptions): Promise<void> {
  const base = { url: opts.displayUrl, scheduler_cluster_id: target.clusterId };
  const spec = DownloadSpec.safeParse(opts.request.download);
  const ranked = spec.success ? ownerFirst(target, taskIdFor(spec.data)) : target;
  let asked: { client: SchedulerClient; reply: PreheatReply };
  try {
    asked = await preheatAtOwner(ranked, opts.request);
  } catch (err) {
    opts.onOutcome({ ...base, task_id: "", hostname: "", ip: "", description: (err as Error).message }, false);
    return;
  }
  const { reply } = asked;
  let client = asked.client;
  /** Where polls go next when `client` stops answering: the rest of the ranking, in order. */
  const fallbacks = ranked.schedulers.filter((u) => u !== client.baseUrl);
  opts.tracker?.asked(reply);
  const ports = new Map<string, number>();
  const outcome = (h: PendingHost, description: string, ok: boolean) => {
    opts.tracker?.settle(h.hostId, ok, description);
    const port = ports.get(h.hostId);
    opts.onOutcome({ ...base, task_id: reply.taskId, hostname: h.hostname, ip: h.ip, ...(port ? { port } : {}), description }, ok);
  };
  const pending = new Map<string, PendingHost>();
  for (const h of reply.hosts) {
    if (h.accepted) pending.set(h.hostId, h);
    else outcome(h, `peer refused the preheat: ${h.error ?? "no reason given"}`, false);
  }
  let missing = 0;
  let lastError = "";
  while (pending.size && !opts.signal.aborted) {
    let status: TaskStatus | undefined;
    try {
      status = await client.taskStatus(reply.taskId);
      missing = 0;
    } catch (err) {
      lastError = (err as Error).message;
      const next = isUnreachable(err) ? fallbacks.shift() : undefined;
      if (next) {
        client = new SchedulerClient(next, target.clusterSecret);
        missing = 0;
        continue;
      }
      if (err instanceof KilnError && err.code === "NOT_FOUND" && ++missing >= 20) {
        for (const h of pending.values()) outcome(h, `the scheduler lost the task: ${lastError}`, false);
        return;
      }
    }
    if (status) {
      for (const p of status.peers) if (p.port) ports.set(p.hostId, p.port);
      opts.tracker?.status(status);
      settle(status, pending, outcome);
    }
    if (pending.size) await sleep(opts.pollMs, opts.signal);
  }
  // Ended early (timeout, deletion, shutdown): what was still running is reported with the reason.
  const reason = typeof opts.signal.reason === "string" ? opts.signal.reason : "stopped";
  for (const h of pending.values()) outcome(h, `${reason}${lastError ? ` (last scheduler error: ${lastError})` : ""}`, false);
}

interface PendingHost {
  hostId: string;
  hostname: string;
  ip: string;
}

function settle(status: TaskStatus, pending: Map<string, PendingHost>, outcome: (h: PendingHost, description: string, ok: boolean) => void): void {
  for (const [hostId, h] of [...pending]) {
    const peers = status.peers.filter((p) => p.hostId === hostId);
    const done = peers.find((p) => p.state === "succeeded");
    if (done) {
      outcome(h, `preheated by ${done.isSeed ? "seed peer" : "peer"} ${h.hostname}`, true);
      pending.delete(hostId);
      continue;
    }
    const active = peers.some((p) => p.state !== "failed" && p.state !== "left");
    const failed = peers.find((p) => p.state === "failed");
    if (!active && failed) {
      outcome(h, failed.error?.message ?? "the peer failed without a reason", false);
      pending.delete(hostId);
    } else if (!active && status.task.state === "failed" && status.task.error) {
      outcome(h, status.task.error.message, false);
      pending.delete(hostId);
    }
  }
}
