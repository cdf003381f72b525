/**
 * The task-management jobs (Dragonfly's get_task, delete_task, get_image_distribution):
 * every active scheduler of each selected cluster is asked, since each knows only
 * the hosts that announced to it; the answers are merged into one job result.
 */
import { SchedulerClient } from "../../api/scheduler-client.js";
import type { JobResult, TaskOutcome } from "../../api/jobs.js";
import type { TaskJobArgs } from "../../api/tasks.js";
import { hostTypeOf, type ImageDistribution, type TaskHolder } from "../../api/tasks.js";
import { parseFilter, taskIdFor } from "../../common/task-id.js";
import { splitUserInfo, withUserInfo } from "../../common/credentials.js";
import { resolveImage } from "../../registry/resolve.js";
import { nowIso } from "../time.js";
import { PREHEAT_DEFAULTS } from "../defaults.js";
import type { HostsReport } from "../../api/peers.js";
import type { JobSecret } from "./args.js";
import type { DispatchTarget } from "./preheat-dispatch.js";

export type TaskJobType = "get_task" | "delete_task" | "get_image_distribution" | "sync_peers";

/** Stores one scheduler's hosts in the peer inventory (sync_peers). */
export type HostsSink = (target: DispatchTarget, schedulerId: number, report: HostsReport) => Promise<void>;

/** The task ID the job names: given, or computed from the URL as a pull through a peer computes it. */
export function jobTaskId(args: TaskJobArgs): string {
  if (args.task_id) return args.task_id;
  return taskIdFor({
    url: args.url ?? "",
    tag: args.tag ?? "",
    application: args.application ?? "",
    // The preheat default: a task preheated with default args is found with default args.
    filteredQueryParams: parseFilter(args.filteredQueryParams ?? PREHEAT_DEFAULTS.filteredQueryParams),
    ...(args.pieceLength !== undefined ? { pieceLength: args.pieceLength } : {}),
  });
}

/** Calls every scheduler of the cluster; one that cannot be reached is a failure of the cluster, named in `failures`. */
export async function eachScheduler<T>(target: DispatchTarget, call: (client: SchedulerClient) => Promise<T>): Promise<{ replies: T[]; failures: string[] }> {
  if (target.schedulers.length === 0) return { replies: [], failures: [`cluster ${target.clusterName} has no active scheduler`] };
  const settled = await Promise.allSettled(target.schedulers.map((url) => call(new SchedulerClient(url, target.clusterSecret))));
  const replies: T[] = [];
  const failures: string[] = [];
  settled.forEach((s, i) => {
    if (s.status === "fulfilled") replies.push(s.value);
    else failures.push(`scheduler ${target.schedulers[i]} of cluster ${target.clusterName}: ${(s.reason as Error).message}`);
  });
  return { replies, failures };
}

function holderLine(h: TaskHolder): string {
  if (h.state === "finished") return `holds the task (${h.content_length ?? "?"} bytes)`;
  return `downloading: ${h.finished_pieces} of ${h.total_pieces ?? "?"} pieces`;
}

export class TaskJobs {
  constructor(
    private readonly targets: DispatchTarget[],
    private readonly result: JobResult,
    private readonly changed: () => void,
    private readonly storeHosts: HostsSink,
  ) {}

  async run(type: TaskJobType, args: TaskJobArgs, secret: JobSecret, signal: AbortSignal): Promise<void> {
    this.result.progress.total = this.targets.length;
    if (type === "get_image_distribution") return this.imageDistribution(args, secret, signal);
    if (type === "sync_peers") {
      await Promise.all(this.targets.map((t) => this.syncPeers(t)));
      return;
    }
    const taskId = jobTaskId(args);
    this.result.urls = [args.url ?? taskId];
    this.log(`task ${taskId}${args.url ? ` (${args.url})` : ""}`);
    if (type === "get_task") this.result.peers = [];
    await Promise.all(this.targets.map((t) => (type === "get_task" ? this.getTask(t, taskId, args) : this.deleteTask(t, taskId, args))));
  }

  private async getTask(target: DispatchTarget, taskId: string, args: TaskJobArgs): Promise<void> {
    const { replies, failures } = await eachScheduler(target, (c) => c.taskHolders(taskId));
    const holders = replies.flatMap((r) => r.holders.map((h) => ({ ...h, scheduler_cluster_id: target.clusterId })));
    this.result.peers!.push(...holders);
    for (const h of holders) {
      const who = { hostname: h.hostname, ip: h.ip, ...(h.port !== undefined ? { port: h.port } : {}), host_type: h.host_type };
      this.outcome(target, taskId, args, { ...who, description: holderLine(h) }, true);
    }
    this.log(`[${target.clusterName}] ${holders.length} host(s) hold the task`);
    this.clusterDone(target, taskId, args, failures);
  }

  private async deleteTask(target: DispatchTarget, taskId: string, args: TaskJobArgs): Promise<void> {
    const { replies, failures } = await eachScheduler(target, (c) => c.deleteTask(taskId));
    const hosts = replies.flatMap((r) => r.hosts);
    for (const h of hosts) {
      const who = { hostname: h.hostname, ip: h.ip, ...(h.port !== undefined ? { port: h.port } : {}), host_type: hostTypeOf(h.isSeed) };
      if (h.deleted) this.outcome(target, taskId, args, { ...who, description: `deleted (${h.bytes} bytes freed)` }, true);
      else this.outcome(target, taskId, args, { ...who, description: h.error ?? "not deleted" }, false);
    }
    this.log(`[${target.clusterName}] ${hosts.filter((h) => h.deleted).length} of ${hosts.length} holder(s) deleted the task`);
    this.clusterDone(target, taskId, args, failures);
  }

  /** Every scheduler of the cluster: its hosts now, into the inventory; one success line per scheduler. */
  private async syncPeers(target: DispatchTarget): Promise<void> {
    const failures: string[] = [];
    if (target.schedulers.length === 0) failures.push(`cluster ${target.clusterName} has no active scheduler`);
    await Promise.all(
      target.schedulers.map(async (url, i) => {
        try {
          const report = await new SchedulerClient(url, target.clusterSecret).hosts();
          await this.storeHosts(target, target.schedulerIds?.[i] ?? 0, report);
          this.outcome(target, "", { url }, { hostname: "", ip: "", description: `${report.hosts.length} host(s) synced from scheduler ${url}` }, true);
        } catch (err) {
          failures.push(`scheduler ${url} of cluster ${target.clusterName}: ${(err as Error).message}`);
        }
      }),
    );
    this.clusterDone(target, "", {}, failures);
  }

  /** Resolves the image, then asks every scheduler which hosts hold each layer. */
  private async imageDistribution(args: TaskJobArgs, secret: JobSecret, signal: AbortSignal): Promise<void> {
    const manifestUrl = args.url ?? "";
    let image: Awaited<ReturnType<typeof resolveImage>>;
    try {
      image = await resolveImage(withUserInfo(manifestUrl, secret.userInfo?.[manifestUrl]), {
        username: secret.username,
        password: secret.password,
        headers: { ...args.headers, ...secret.headers },
        platform: args.platform || undefined,
        signal,
      });
    } catch (err) {
      const description = `cannot resolve image ${manifestUrl}: ${(err as Error).message}`;
      this.result.failure_tasks.push({ url: manifestUrl, task_id: "", scheduler_cluster_id: 0, hostname: "", ip: "", description });
      this.log(description);
      return;
    }
    const layers = image.layers.map((l) => {
      const url = splitUserInfo(l.url).url;
      return { url, digest: l.digest, size: l.size, task_id: jobTaskId({ ...args, task_id: undefined, url }) };
    });
    this.result.urls = layers.map((l) => l.url);
    this.log(`resolved ${image.name}${image.platform ? ` for ${image.platform}` : ""} to manifest ${image.manifestDigest}: ${layers.length} layer(s)`);
    const distribution: ImageDistribution = { manifest_digest: image.manifestDigest, platform: image.platform ?? "", layers, peers: [] };
    this.result.image = distribution;
    await Promise.all(
      this.targets.map(async (target) => {
        const byHost = new Map<string, ImageDistribution["peers"][number]>();
        const failures: string[] = [];
        for (const layer of layers) {
          const asked = await eachScheduler(target, (c) => c.taskHolders(layer.task_id));
          failures.push(...asked.failures);
          for (const h of asked.replies.flatMap((r) => r.holders)) {
            let peer = byHost.get(h.host_id);
            if (!peer) {
              peer = {
                host_id: h.host_id,
                hostname: h.hostname,
                ip: h.ip,
                ...(h.port !== undefined ? { port: h.port } : {}),
                host_type: h.host_type,
                scheduler_cluster_id: target.clusterId,
                layers: [],
              };
              byHost.set(h.host_id, peer);
            }
            peer.layers.push({ digest: layer.digest, state: h.state, finished_pieces: h.finished_pieces, total_pieces: h.total_pieces });
          }
        }
        distribution.peers.push(...byHost.values());
        for (const p of byHost.values()) {
          const cached = p.layers.filter((l) => l.state === "finished").length;
          this.outcome(
            target,
            "",
            { url: manifestUrl },
            { hostname: p.hostname, ip: p.ip, host_type: p.host_type, description: `${cached} of ${layers.length} layers cached` },
            true,
          );
        }
        this.log(
          `[${target.clusterName}] ${[...byHost.values()].filter((p) => p.layers.filter((l) => l.state === "finished").length === layers.length).length} host(s) hold every layer`,
        );
        this.clusterDone(target, "", { url: manifestUrl }, [...new Set(failures)]);
      }),
    );
  }

  private outcome(
    target: DispatchTarget,
    taskId: string,
    args: Pick<TaskJobArgs, "url">,
    o: Pick<TaskOutcome, "hostname" | "ip" | "host_type" | "description">,
    ok: boolean,
  ): void {
    const row: TaskOutcome = { url: args.url ?? "", task_id: taskId, scheduler_cluster_id: target.clusterId, ...o };
    (ok ? this.result.success_tasks : this.result.failure_tasks).push(row);
    if (!ok) this.log(`[${target.clusterName}] ${o.hostname} (${o.ip}): ${o.description}`);
    this.changed();
  }

  /** The cluster was asked: its schedulers that could not be are failures of the job. */
  private clusterDone(target: DispatchTarget, taskId: string, args: Pick<TaskJobArgs, "url">, failures: string[]): void {
    for (const f of failures) this.outcome(target, taskId, args, { hostname: "", ip: "", description: f }, false);
    if (failures.length) this.result.progress.failed++;
    else this.result.progress.succeeded++;
    this.changed();
  }

  private log(line: string): void {
    this.result.log.push(`${nowIso()} ${line}`);
  }
}
