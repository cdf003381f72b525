/**
 * A preheat job's work: file URLs as given, image manifests resolved to their config
 * and layer blobs (registry auth, manifest lists, the platform); then every URL sent
 * to every selected cluster (preheat-dispatch.ts), with live progress per URL and host
 * (preheat-progress.ts) and an outcome per host. The job around it is runner.ts's.
 */
import { parseFilter } from "../../common/task-id.js";
import type { JobResult, TaskOutcome } from "../../api/jobs.js";
import type { StoredPreheatArgs } from "../../api/preheat.js";
import type { DownloadSpecInput } from "../../api/common.js";
import { resolveImage } from "../../registry/resolve.js";
import { splitUserInfo, withUserInfo } from "../../common/credentials.js";
import { MANAGER, PREHEAT_DEFAULTS } from "../defaults.js";
import { nowIso } from "../time.js";
import { type JobSecret, argUrls } from "./args.js";
import { dispatchUrl, type DispatchTarget } from "./preheat-dispatch.js";
import { eachLimit } from "../../common/each-limit.js";
import { UrlTracker, jobProgress } from "./preheat-progress.js";
import { hostLabel } from "../../common/host-label.js";

export interface PreheatRun {
  /** The selected clusters with their live schedulers; asked once the URLs are known. */
  targets: () => Promise<DispatchTarget[]>;
  /** The result changed: write it (at most once a second). */
  changed: () => void;
  /** How often to ask a scheduler for the task's state. */
  pollMs: number;
  signal: AbortSignal;
}

/** Preheats `args`' URLs on every target cluster, recording URLs, progress, outcomes and log lines in `result`. */
export async function runPreheat(args: StoredPreheatArgs, secret: JobSecret, result: JobResult, run: PreheatRun): Promise<void> {
  const items = await resolveUrls(args, secret, result, run.signal);
  result.urls = items.map((i) => i.url);
  const targets = await run.targets();
  await dispatchAll(args, items, targets, result, run.changed, run.pollMs, run.signal);
}

/** A URL ready to preheat, with what its download needs. */
interface WorkItem {
  /** As shown in results and logs: no user-info. */
  url: string;
  /** As fetched: with the user-info it was given with. */
  fetchUrl: string;
  headers: Record<string, string>;
}

/** File URLs as given; image manifests resolved to their config and layer blobs. */
async function resolveUrls(args: StoredPreheatArgs, secret: JobSecret, result: JobResult, signal: AbortSignal): Promise<WorkItem[]> {
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

/** Every URL to every target cluster, `concurrent_task_count` at a time, each followed until its hosts are done. */
async function dispatchAll(
  args: StoredPreheatArgs,
  items: WorkItem[],
  targets: DispatchTarget[],
  result: JobResult,
  changed: () => void,
  pollMs: number,
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
    changed();
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
      pollMs: pollMs,
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
        changed();
      },
    });
    if (failed) result.progress.failed++;
    else result.progress.succeeded++;
    tracker.finish(failed);
    update();
  });
}
