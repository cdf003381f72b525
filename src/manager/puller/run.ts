/**
 * One run of a pull schedule: resolve every image's tag to a digest, find which
 * selected peers already hold every blob of it, and preheat the blobs only on those
 * that lack them (scope all_peers, restricted to those hosts): the registry serves
 * each blob about once, the peers serve each other. One image or node failing never
 * stops the others; the status says which image × node pairs are not warm and why.
 */
import type { Logger } from "../../common/logger.js";
import { taskIdFor } from "../../common/task-id.js";
import { splitUserInfo } from "../../common/credentials.js";
import type { Labels } from "../../api/peers.js";
import type { PullImage, PullStatus } from "../../api/puller.js";
import { parseImageName, imageRef } from "../../registry/image-name.js";
import { manifestUrl } from "../../registry/reference.js";
import { resolveImage } from "../../registry/resolve.js";
import type { Store } from "../store.js";
import { MANAGER } from "../defaults.js";
import { nowIso } from "../time.js";
import { dispatchTargets, dispatchUrl, type DispatchTarget } from "../jobs/preheat-dispatch.js";
import { eachLimit } from "../../common/each-limit.js";
import { eachScheduler } from "../jobs/task-jobs.js";
import { SchedulerClient } from "../../api/scheduler-client.js";
import type { ImageImportRequestInput } from "../../api/peer.js";
import { KilnError } from "../../common/errors.js";

/** A schedule's settings as stored (`spec` column). */
export interface PullSpec {
  images: PullImage[];
  interval_hours: number | null;
  cron: string | null;
  node_selector: Labels;
  insecure_registries: string[];
  concurrency: number;
  scheduler_cluster_ids: number[];
}

export interface PullRunDeps {
  store: Store;
  log: Logger;
  clusterSecret?: string;
  memberTimeoutMs: number;
  pollMs: number;
  /** Longest one image may take on one run. */
  imageTimeoutMs: number;
}

/** A peer of the schedule's clusters, as a run sees it. */
export interface PullNode {
  hostId: string;
  hostname: string;
  ip: string;
  /** Upload port. */
  port: number;
  clusterId: number;
  selected: boolean;
}

type Cell = PullStatus["cells"][number];
type Blob = { url: string; fetchUrl: string; taskId: string };

/** Tries per node and image in one run, and the pause before the second (doubling after). */
const PULL_ATTEMPTS = 3;
const RETRY_PAUSE_MS = 1_000;

/** Asks the node's peer, through a scheduler of its cluster that knows it, to have its runtime import the image. */
async function importInto(target: DispatchTarget, n: PullNode, req: ImageImportRequestInput): Promise<{ ok: boolean; detail: string }> {
  let last = "no scheduler of its cluster knows the host";
  for (const url of target.schedulers) {
    try {
      const r = await new SchedulerClient(url, target.clusterSecret).importImage(n.hostId, req);
      return { ok: true, detail: r.detail };
    } catch (err) {
      last = (err as Error).message;
      if (!(err instanceof KilnError && err.code === "NOT_FOUND")) break;
    }
  }
  return { ok: false, detail: last };
}

/** Preheats every blob on the `nodes` that lack the image; a failure is recorded per node with its reason. */
async function preheatOn(
  deps: PullRunDeps,
  targets: DispatchTarget[],
  blobs: Blob[],
  headers: Record<string, string>,
  nodes: PullNode[],
  failures: Map<string, string>,
  signal: AbortSignal,
): Promise<void> {
  for (const target of targets) {
    const inCluster = nodes.filter((n) => n.clusterId === target.clusterId);
    if (!inCluster.length) continue;
    for (const b of blobs) {
      if (signal.aborted) return;
      await dispatchUrl(target, {
        displayUrl: b.url,
        request: {
          download: { url: b.fetchUrl, headers, tag: "", application: "", filteredQueryParams: [] },
          scope: "all_peers",
          hostIds: inCluster.map((n) => n.hostId),
        },
        signal,
        pollMs: deps.pollMs,
        onOutcome: (o, ok) => {
          if (ok) return;
          const host = inCluster.find((n) => n.hostname === o.hostname && n.ip === o.ip);
          // A failure without a host (no scheduler, refused preheat) is every node's of the cluster.
          for (const n of host ? [host] : inCluster) if (!failures.has(n.hostId)) failures.set(n.hostId, `${b.url}: ${o.description}`);
        },
      });
    }
  }
}

const matches = (labels: Labels, selector: Labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The schedule's clusters and their active peers as the inventory lists them now, each marked selected or not by the schedule's node selector. */
export async function inventoryNodes(store: Store, spec: Pick<PullSpec, "scheduler_cluster_ids" | "node_selector">) {
  const clusters = spec.scheduler_cluster_ids.length ? await store.clusters.byIds(spec.scheduler_cluster_ids) : await store.clusters.list();
  const clusterIds = new Set(clusters.map((c) => c.id));
  const staleBefore = nowIso(Date.now() - MANAGER.peerStaleMs);
  const peers = (await store.peers.list({ state: "active", staleBefore, page: 1, perPage: 100_000 })).rows.filter((p) =>
    clusterIds.has(p.scheduler_cluster_id),
  );
  const nodes: PullNode[] = peers.map((p) => ({
    hostId: p.host_id,
    hostname: p.hostname,
    ip: p.ip,
    port: p.port,
    clusterId: p.scheduler_cluster_id,
    selected: matches(JSON.parse(p.labels) as Labels, spec.node_selector),
  }));
  return { clusters, clusterIds, nodes };
}

/**
 * One run. With `onlyHosts`, the run looks at those hosts alone (nodes that joined, or
 * gained a matching label, since the last run): its status lists only them, for the
 * caller to merge into the last run's.
 */
export async function runPullSchedule(
  deps: PullRunDeps,
  spec: PullSpec,
  creds: { username?: string; password?: string },
  onlyHosts?: ReadonlySet<string>,
): Promise<PullStatus> {
  const { store } = deps;
  const inventory = await inventoryNodes(store, spec);
  const { clusters, clusterIds } = inventory;
  const nodes = onlyHosts ? inventory.nodes.filter((n) => onlyHosts.has(n.hostId)) : inventory.nodes;
  const targets = dispatchTargets(clusters, await store.schedulers.byCluster([...clusterIds]), deps.memberTimeoutMs, deps.clusterSecret);

  const status: PullStatus = {
    images: [],
    nodes: nodes.map((n) => ({
      host_id: n.hostId,
      hostname: n.hostname,
      ip: n.ip,
      port: n.port,
      selected: n.selected,
      scheduler_cluster_id: n.clusterId,
    })),
    cells: [],
  };
  await eachLimit(spec.images, spec.concurrency, async (img) => {
    const { image, cells } = await warmImage(deps, spec, creds, img, nodes, targets);
    status.images.push(image);
    status.cells.push(...cells);
  });
  // The list's order, whatever order the images finished in.
  const order = new Map(spec.images.map((i, n) => [i.name, n]));
  status.images.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  return status;
}

async function warmImage(
  deps: PullRunDeps,
  spec: PullSpec,
  creds: { username?: string; password?: string },
  img: PullImage,
  nodes: PullNode[],
  targets: DispatchTarget[],
): Promise<{ image: PullStatus["images"][number]; cells: Cell[] }> {
  const checkedAt = () => nowIso();
  const selected = nodes.filter((n) => n.selected);
  const cell = (n: PullNode, state: Cell["state"], reason: string | null): Cell => ({
    image: img.name,
    host_id: n.hostId,
    state,
    reason,
    checked_at: checkedAt(),
  });
  const notSelected = nodes.filter((n) => !n.selected).map((n) => cell(n, "not_selected", null));
  const signal = AbortSignal.timeout(deps.imageTimeoutMs);
  let resolved: Awaited<ReturnType<typeof resolveImage>>;
  try {
    const name = parseImageName(img.image);
    const url = manifestUrl(imageRef(name, spec.insecure_registries.includes(name.host)));
    resolved = await resolveImage(url, { ...creds, ...(img.platform ? { platform: img.platform } : {}), signal });
  } catch (err) {
    const reason = `cannot resolve ${img.image}: ${(err as Error).message}`;
    deps.log.warn({ image: img.image, err: (err as Error).message }, "pull schedule: image not resolved");
    return {
      image: { name: img.name, image: img.image, digest: null, error: reason, checked_at: checkedAt() },
      cells: [...selected.map((n) => cell(n, "failed", reason)), ...notSelected],
    };
  }
  const blobs = resolved.blobUrls.map((fetchUrl) => {
    const url = splitUserInfo(fetchUrl).url;
    return { url, fetchUrl, taskId: taskIdFor({ url }) };
  });

  /** Host ID → blobs it holds whole, as the schedulers know now. */
  const held = async () => {
    const byHost = new Map<string, Set<string>>();
    for (const t of targets) {
      for (const b of blobs) {
        const { replies } = await eachScheduler(t, (c) => c.taskHolders(b.taskId));
        for (const h of replies.flatMap((r) => r.holders)) {
          if (h.state !== "finished") continue;
          const set = byHost.get(h.host_id) ?? new Set<string>();
          byHost.set(h.host_id, set.add(b.taskId));
        }
      }
    }
    return byHost;
  };
  const warm = (byHost: Map<string, Set<string>>, n: PullNode) => blobs.every((b) => byHost.get(n.hostId)?.has(b.taskId));

  const before = await held();
  const lacking = selected.filter((n) => !warm(before, n));
  const failures = new Map<string, string>();
  let todo = lacking;
  // Nodes that failed are asked again, a bounded number of times with a growing pause; the others are done.
  for (let attempt = 1; todo.length && !signal.aborted; attempt++) {
    failures.clear();
    await preheatOn(deps, targets, blobs, resolved.headers, todo, failures, signal);
    const failed = todo.filter((n) => failures.has(n.hostId));
    if (!failed.length || attempt >= PULL_ATTEMPTS) break;
    deps.log.info({ image: img.image, attempt, failed: failed.map((n) => n.hostname) }, "pull schedule: retrying the nodes that failed");
    await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS * 2 ** (attempt - 1)));
    todo = failed;
  }
  const after = lacking.length ? await held() : before;
  const plainHttp = spec.insecure_registries.includes(parseImageName(img.image).host);
  // The runtime's own pull of a private image needs what the manager resolved it with.
  const credentials = creds.username || creds.password ? { credentials: { username: creds.username ?? "", password: creds.password ?? "" } } : {};
  const cells = await Promise.all(
    selected.map(async (n) => {
      if (!warm(after, n)) {
        return cell(
          n,
          failures.has(n.hostId) ? "failed" : "pulling",
          failures.get(n.hostId) ?? (signal.aborted ? "the run's time for this image ran out" : null),
        );
      }
      // In the peer's cache; the node's runtime (when the peer has one) pulls it through the peer.
      const target = targets.find((t) => t.clusterId === n.clusterId);
      const imported = target
        ? await importInto(target, n, {
            image: img.image,
            plainHttp,
            digest: resolved.manifestDigest,
            ...(img.platform ? { platform: img.platform } : {}),
            ...credentials,
          })
        : { ok: false, detail: "its cluster is not selected" };
      return imported.ok ? cell(n, "warm", imported.detail) : cell(n, "failed", `in the peer cache, but ${imported.detail}`);
    }),
  );
  deps.log.info(
    {
      image: img.image,
      digest: resolved.manifestDigest,
      selected: selected.length,
      fetched: lacking.length,
      warm: cells.filter((c) => c.state === "warm").length,
    },
    "pull schedule: image checked",
  );
  return {
    image: { name: img.name, image: img.image, digest: resolved.manifestDigest, error: null, checked_at: checkedAt() },
    cells: [...cells, ...notSelected],
  };
}
