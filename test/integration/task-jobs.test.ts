/**
 * The task-management jobs end to end, real processes on loopback: `kiln manager`,
 * `kiln scheduler`, a seed peer and three peers, a file origin and Debian's
 * docker-registry. get_task finds exactly the hosts holding a task; delete_task
 * empties their data directories (a killed peer is reported, the job ends FAILURE),
 * the next download goes back to the origin; a delete during a download never
 * yields wrong bytes; get_image_distribution answers "which nodes hold this image";
 * the peer inventory lists what the schedulers report, filtered server-side.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestCluster, metric, type PeerHandle } from "../helpers/cluster.js";
import { runKiln } from "../helpers/proc.js";
import { buildOciImage, pushImage, registryToolsMissing, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { startManagedCluster, type ManagedCluster } from "../helpers/managed-cluster.js";
import { api, waitForJob } from "../helpers/manager.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";

const ROOT_PASSWORD = "task-jobs-root-password";
const FILTER = ["Expires", "Signature", "ns"];

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
const sha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

describe("task jobs: get_task, delete_task, get_image_distribution", () => {
  let skip: string | undefined;
  let dir: string;
  let managed: ManagedCluster | undefined;
  let managerUrl: string;
  let token: string;
  let clusterToken: string;
  let cluster: TestCluster;
  let seed: PeerHandle;
  let peers: PeerHandle[];
  let origin: TestOrigin;
  let registry: TestRegistry;
  let image: BuiltImage;

  const createJob = (body: unknown, as = token) => api(`${managerUrl}/oapi/v1/jobs`, { token: as, body });
  const runJob = async (body: unknown) => {
    const r = await createJob(body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return waitForJob(managerUrl, token, r.json.id, 60_000);
  };
  const holderNames = (job: any) => job.result.peers.map((p: any) => p.hostname).sort();
  const holds = (p: PeerHandle, taskId: string) => exists(join(p.dataDir, "tasks", taskId));

  before(async () => {
    skip = await registryToolsMissing();
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-task-jobs-"));
    // A long host timeout: a peer killed before a delete is still known to hold the task.
    managed = await startManagedCluster(dir, { rootPassword: ROOT_PASSWORD, schedulerArgs: ["--host-timeout-ms", "60000", "--hosts-report-ms", "300"] });
    ({ managerUrl, cluster, seed, token, clusterToken } = managed);
    peers = [];
    for (const [name, zone] of [
      ["peer-1", "a"],
      ["peer-2", "b"],
      ["peer-3", "a"],
    ]) {
      peers.push(await cluster.addPeer(name!, { args: ["--label", `zone=${zone}`, "--label", "kubernetes.io/arch=amd64"] }));
    }
    origin = await startOrigin();
    registry = await startRegistry("none");
    image = await buildOciImage({ platforms: ["linux/amd64"], layers: 3, layerBytes: 200 * 1024 });
    await pushImage(image, registry, "team/three");
    // Until the scheduler is active in the cluster (jobs need it).
    for (;;) {
      const r = await api(`${managerUrl}/oapi/v1/clusters`, { token: clusterToken });
      if (r.json?.[0]?.schedulers?.some((s: any) => s.state === "active")) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  after(async () => {
    await managed?.stop();
    await origin?.close();
    await registry?.stop();
    await image?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const file = makeFile(5 * 1024 * 1024);
  const path = "/files/held.bin";
  let url: string;
  let taskId: string;

  it("get_task by URL and by task ID lists exactly the four hosts a preheat reached; another tag finds nothing", async (t) => {
    if (skip) return t.skip(skip);
    origin.add(path, file);
    url = `${origin.url}${path}`;
    taskId = taskIdFor({ url, filteredQueryParams: FILTER });
    const preheat = await runJob({ type: "preheat", args: { type: "file", url, scope: "all_peers" } });
    assert.equal(preheat.state, "SUCCESS", JSON.stringify(preheat.result));
    for (const p of [seed, ...peers]) assert.ok(await holds(p, taskId), `${p.name} holds the task`);

    const byUrl = await runJob({ type: "get_task", args: { url } });
    assert.equal(byUrl.state, "SUCCESS", JSON.stringify(byUrl.result));
    assert.deepEqual(holderNames(byUrl), ["peer-1", "peer-2", "peer-3", "seed-1"]);
    for (const h of byUrl.result.peers) {
      assert.equal(h.task_id, taskId);
      assert.equal(h.state, "finished");
      assert.equal(h.content_length, file.data.length);
      assert.equal(h.finished_pieces, h.total_pieces);
      assert.equal(h.host_type, h.hostname === "seed-1" ? "super" : "normal");
      assert.equal(h.ip, "127.0.0.1");
      assert.ok(Date.parse(h.created_at) <= Date.parse(h.updated_at));
    }
    assert.equal(byUrl.result.success_tasks.length, 4);

    const byId = await runJob({ type: "get_task", args: { task_id: taskId } });
    assert.deepEqual(holderNames(byId), ["peer-1", "peer-2", "peer-3", "seed-1"]);

    const otherTag = await runJob({ type: "get_task", args: { url, tag: "other" } });
    assert.equal(otherTag.state, "SUCCESS");
    assert.deepEqual(otherTag.result.peers, []);

    // The CLI prints the same as a table.
    const cli = await runKiln(["task", "get", url, "--manager", managerUrl, "--no-progress"], { env: { KILN_TOKEN: token } });
    assert.equal(cli.code, 0, cli.stderr);
    const rows = cli.stdout.trim().split("\n");
    assert.match(rows[0]!, /^HOSTNAME\s+ADDRESS\s+TYPE\s+STATE\s+PIECES/);
    // Hosts that share a hostname or an IP told apart by IP and upload port.
    for (const r of rows.slice(1)) assert.match(r.split(/\s+/)[1]!, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      rows
        .slice(1)
        .map((r) => r.split(/\s+/)[0])
        .sort(),
      ["peer-1", "peer-2", "peer-3", "seed-1"],
    );
    assert.ok(
      rows.slice(1).every((r) => /\bfinished\b/.test(r) && /\b2\/2\b/.test(r)),
      cli.stdout,
    );
  });

  it("bad input gets a 4xx naming the field, and nothing is deleted", async (t) => {
    if (skip) return t.skip(skip);
    const bad: [unknown, number, RegExp][] = [
      [{ type: "delete_task", args: {} }, 422, /args\.task_id: task_id or url is required/],
      [{ type: "delete_task", args: { task_id: taskId, url } }, 422, /args\.url: give task_id or url, not both/],
      [{ type: "delete_task", args: { task_id: "../../etc" } }, 422, /args\.task_id: must be a task ID/],
      [{ type: "delete_task", args: { url: "ftp://x/y" } }, 422, /args\.url: must be an absolute http\(s\) URL/],
      [{ type: "delete_task", args: { url }, scheduler_cluster_ids: [99] }, 422, /scheduler_cluster_ids: unknown scheduler cluster 99/],
      [{ type: "purge", args: { url } }, 422, /type: must be one of "preheat", "get_task", "delete_task", "get_image_distribution"/],
      [{ type: "get_image_distribution", args: { url } }, 422, /args\.url: an image URL must look like/],
    ];
    for (const [body, status, message] of bad) {
      const r = await createJob(body);
      assert.equal(r.status, status, JSON.stringify(r.json));
      assert.match(r.json.message, message);
    }
    const forbidden = await createJob({ type: "delete_task", args: { url } }, clusterToken);
    assert.equal(forbidden.status, 403, JSON.stringify(forbidden.json));
    assert.match(forbidden.json.message, /scope/);
    for (const p of [seed, ...peers]) assert.ok(await holds(p, taskId), `${p.name} still holds the task`);
  });

  it("get_image_distribution: a 3-layer image pulled on 2 of 3 peers shows those 2 warm for every layer", async (t) => {
    if (skip) return t.skip(skip);
    const p = image.platforms["linux/amd64"]!;
    for (const peer of peers.slice(0, 2)) {
      for (const layer of p.layers) {
        const out = join(dir, `${peer.name}-${layer.slice(7, 19)}`);
        const got = await cluster.get(peer, `${registry.url}/v2/team/three/blobs/${layer}`, out);
        assert.equal(got.code, 0, got.stderr);
      }
    }
    const manifestUrl = `${registry.url}/v2/team/three/manifests/${image.tag}`;
    const job = await runJob({ type: "get_image_distribution", args: { url: manifestUrl } });
    assert.equal(job.state, "SUCCESS", JSON.stringify(job.result));
    const dist = job.result.image;
    assert.equal(dist.manifest_digest, p.manifest);
    assert.deepEqual(
      dist.layers.map((l: any) => l.digest),
      p.layers,
    );
    for (const layer of p.layers) {
      const warm = dist.peers
        .filter((h: any) => h.host_type === "normal" && h.layers.some((l: any) => l.digest === layer && l.state === "finished"))
        .map((h: any) => h.hostname)
        .sort();
      assert.deepEqual(warm, ["peer-1", "peer-2"], `layer ${layer}`);
    }
    assert.ok(!dist.peers.some((h: any) => h.hostname === "peer-3"), "peer-3 pulled nothing");

    const cli = await runKiln(["image", "distribution", manifestUrl, "--manager", managerUrl, "--no-progress"], { env: { KILN_TOKEN: token } });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /LAYER\s+SIZE\s+WARM NODES\s+HOSTS/);
    // Each holder as "name (ip:port)": peers that share a hostname are told apart.
    const label = (h: PeerHandle) => `${h.name} \\([0-9.]+:${h.uploadPort}\\)`;
    const holders = [peers[0]!, peers[1]!, seed].map(label).join(", ");
    for (const layer of p.layers) assert.match(cli.stdout, new RegExp(`${layer.slice(0, 19)}\\s+\\S+ KiB\\s+3\\s+${holders}\n`), cli.stdout);
  });

  it("a delete during a download: the client gets an error or the right bytes, never wrong ones", async (t) => {
    if (skip) return t.skip(skip);
    const slow = await startOrigin({ rateBytes: 3 * 1024 * 1024 });
    t.after(() => slow.close());
    const big = makeFile(12 * 1024 * 1024);
    slow.add("/files/slow.bin", big);
    const slowUrl = `${slow.url}/files/slow.bin`;
    const slowTask = taskIdFor({ url: slowUrl, filteredQueryParams: FILTER });
    const out = join(dir, "slow.bin");
    const getting = cluster.get(peers[0]!, slowUrl, out);
    // Until peer-1 holds part of it.
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    for (;;) {
      const st = await scheduler.taskStatus(slowTask).catch(() => undefined);
      if (st?.peers.some((p) => p.hostname === "peer-1" && p.finishedPieces > 0)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const job = await runJob({ type: "delete_task", args: { url: slowUrl } });
    assert.ok(
      job.result.success_tasks.some((s: any) => s.hostname === "peer-1"),
      JSON.stringify(job.result),
    );
    const got = await getting;
    t.diagnostic(`kiln get during the delete: exit ${got.code}${got.code ? `, ${got.stderr.trim()}` : ""}`);
    if (got.code === 0) assert.equal(await sha256(out), big.sha256, "a complete answer has the right bytes");
    else {
      assert.match(got.stderr, /deleted/);
      assert.equal(await exists(out), false, "no partial file left as the output");
    }
    assert.equal(await holds(peers[0]!, slowTask), false);
  });

  it("delete_task removes it from every holder; a killed peer is a failure with its reason; the next get goes to the origin once", async (t) => {
    if (skip) return t.skip(skip);
    const before = await Promise.all([seed, ...peers].map((p) => metric(p.metricsUrl, "kiln_peer_stored_bytes")));
    const killed = peers[2]!;
    await killed.proc.kill("SIGKILL"); // dead, not gone: it could not say goodbye to the scheduler
    const cli = await runKiln(["task", "delete", url, "--manager", managerUrl, "--no-progress", "--json"], { env: { KILN_TOKEN: token } });
    assert.equal(cli.code, 1, "the job ends FAILURE: one holder still has the content");
    const job = JSON.parse(cli.stdout);
    assert.equal(job.state, "FAILURE");
    assert.deepEqual(job.result.success_tasks.map((s: any) => s.hostname).sort(), ["peer-1", "peer-2", "seed-1"]);
    for (const s of job.result.success_tasks) assert.match(s.description, new RegExp(`^deleted \\(${file.data.length} bytes freed\\)$`));
    assert.equal(job.result.failure_tasks.length, 1);
    assert.equal(job.result.failure_tasks[0].hostname, "peer-3");
    assert.equal(job.result.failure_tasks[0].host_type, "normal");
    assert.match(job.result.failure_tasks[0].description, /could not reach the peer: .*(unreachable|ECONNREFUSED)/);
    assert.match(cli.stderr, /FAILURE: job \d+: could not reach the peer/);

    const live = [seed, peers[0]!, peers[1]!];
    for (const [i, p] of live.entries()) {
      assert.equal(await holds(p, taskId), false, `${p.name}'s data dir no longer holds it`);
      const now = await metric(p.metricsUrl, "kiln_peer_stored_bytes");
      assert.equal(before[i === 0 ? 0 : i]! - now, file.data.length, `${p.name}'s stored bytes fell by the file`);
    }
    assert.equal(await holds(killed, taskId), true, "the killed peer kept it (reported as failed)");

    const after = await runJob({ type: "get_task", args: { url } });
    assert.deepEqual(after.result.peers, [], "the scheduler forgot every holder");

    const sent = origin.sent.get(path) ?? 0;
    const out = join(dir, "again.bin");
    const got = await cluster.get(peers[0]!, url, out);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await sha256(out), file.sha256);
    assert.equal((origin.sent.get(path) ?? 0) - sent, file.data.length, "exactly one more copy from the origin");
  });

  it("the peer inventory: what the scheduler reports, paged and filtered; sync_peers refreshes it; a peer that stops is inactive", async (t) => {
    if (skip) return t.skip(skip);
    const peersApi = (query = "") => api(`${managerUrl}/oapi/v1/peers${query}`, { token: clusterToken });
    const byName = async () => {
      const r = await peersApi("?per_page=100");
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return new Map<string, any>(r.json.map((p: any) => [p.hostname, p]));
    };
    const sync = await runJob({ type: "sync_peers" });
    assert.equal(sync.state, "SUCCESS", JSON.stringify(sync.result));
    assert.match(sync.result.success_tasks[0].description, /^4 host\(s\) synced from scheduler /, "peer-3 was killed, but the scheduler still knows it");
    const all = await byName();
    assert.deepEqual([...all.keys()].sort(), ["peer-1", "peer-2", "peer-3", "seed-1"]);
    const p1 = all.get("peer-1");
    assert.equal(p1.type, "normal");
    assert.equal(all.get("seed-1").type, "super");
    assert.deepEqual(p1.labels, { zone: "a", "kubernetes.io/arch": "amd64" });
    assert.equal(p1.port, peers[0]!.uploadPort);
    assert.equal(p1.proxy_port, Number(new URL(peers[0]!.proxyUrl).port));
    assert.equal(p1.metrics_port, Number(new URL(peers[0]!.metricsUrl).port));
    assert.equal(p1.version, "0.1.0");
    assert.equal(p1.state, "active");
    assert.ok(p1.free_disk_bytes > 0);
    // The counters are the peer's own (its metrics), as of its last announce (every 2 s) and report (every 0.3 s).
    const counters = async () => {
      const p = (await byName()).get("peer-1");
      const m = (name: string) => metric(peers[0]!.metricsUrl, name);
      return {
        inventory: [p.bytes_stored, p.task_count, p.swarm_bytes + p.origin_bytes],
        metrics: [await m("kiln_peer_stored_bytes"), await m("kiln_peer_tasks"), await m("kiln_peer_download_bytes_total")],
      };
    };
    let seen = await counters();
    for (const deadline = Date.now() + 15_000; JSON.stringify(seen.inventory) !== JSON.stringify(seen.metrics) && Date.now() < deadline; ) {
      await new Promise((res) => setTimeout(res, 200));
      seen = await counters();
    }
    assert.deepEqual(seen.inventory, seen.metrics);
    assert.ok((seen.inventory[0] ?? 0) >= file.data.length, "peer-1 holds at least the file it downloaded again");

    const zoneA = await peersApi("?labels=zone=a");
    assert.deepEqual(zoneA.json.map((p: any) => p.hostname).sort(), ["peer-1", "peer-3"]);
    const seeds = await peersApi("?type=super");
    assert.deepEqual(
      seeds.json.map((p: any) => p.hostname),
      ["seed-1"],
    );
    const search = await peersApi("?q=PEER-2");
    assert.deepEqual(
      search.json.map((p: any) => p.hostname),
      ["peer-2"],
    );
    const page = await peersApi("?per_page=2&page=2");
    assert.equal(page.headers.get("x-total-count"), "4");
    assert.deepEqual(
      page.json.map((p: any) => p.hostname),
      ["peer-3", "seed-1"],
    );
    const badSelector = await peersApi("?labels=zone");
    assert.equal(badSelector.status, 422);
    assert.match(badSelector.json.message, /labels: "zone" is not key=value/);
    assert.equal((await api(`${managerUrl}/api/v1/peers`)).status, 401, "the console API needs a session");
    assert.equal((await api(`${managerUrl}/oapi/v1/peers`, { token })).status, 403, "a job-scope token cannot list peers");

    // peer-2 stops (and says so): the next report leaves it out.
    await peers[1]!.proc.kill();
    for (;;) {
      const r = await peersApi("?state=inactive");
      if (r.json.some((p: any) => p.hostname === "peer-2")) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const active = await peersApi("?state=active");
    assert.deepEqual(active.json.map((p: any) => p.hostname).sort(), ["peer-1", "peer-3", "seed-1"]);
  });
});
