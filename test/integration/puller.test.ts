/**
 * Pull schedules end to end, real processes on loopback: `kiln manager`, `kiln
 * scheduler`, a seed peer and three labelled peers, Debian's docker-registry with
 * images pushed by skopeo. The Image Puller's own ConfigMap is applied unchanged with
 * `kiln puller apply`; the selected peers become warm with each blob fetched from the
 * registry once in all; a moved tag costs only its new blobs; an image the registry
 * does not have is failed with the reason while the others stay warm.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { access, chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestCluster, PeerHandle } from "../helpers/cluster.js";
import { runKiln, type KilnProcess } from "../helpers/proc.js";
import { buildOciImage, freePort, pushImage, registryToolsMissing, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { REGISTRY_PASSWORD, REGISTRY_USER } from "../helpers/registry-fixtures.js";
import { startManagedCluster, type ManagedCluster } from "../helpers/managed-cluster.js";
import { api } from "../helpers/manager.js";
import { Containerd, containerdToolsMissing } from "../helpers/containerd.js";

const ROOT_PASSWORD = "puller-root-password";
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe("pull schedules: image lists kept warm on selected peers", () => {
  let skip: string | undefined;
  let dir: string;
  let managed: ManagedCluster | undefined;
  let manager: KilnProcess;
  let managerUrl: string;
  let token: string;
  let clusterToken: string;
  let cluster: TestCluster;
  let peers: Record<string, PeerHandle>;
  let registry: TestRegistry;
  const images: BuiltImage[] = [];
  let scheduleId: number;
  /** The containerd test's runtime, kept for the private image after it. */
  let containerd: Containerd | undefined;
  /** Every command line the containerd peer ran ctr with (a wrapper records them). */
  let ctrArgvLog: string;

  const blobsOf = (img: BuiltImage) => {
    const p = img.platforms["linux/amd64"]!;
    return [p.config, ...p.layers];
  };
  /** A peer's cache holds the blob: its task directory is the digest's hex. */
  const holds = (p: PeerHandle, digest: string) => exists(join(p.dataDir, "tasks", digest.slice("sha256:".length)));
  const schedule = async () => (await api(`${managerUrl}/oapi/v1/pull-schedules/${scheduleId}`, { token })).json;
  /** Until a run that checked every image after `since` (an ISO time with milliseconds) has ended. */
  const nextRunEnded = async (since: string) => {
    for (const deadline = Date.now() + 20_000; ; ) {
      const s = await schedule();
      if (s.state === "idle" && s.status?.images.length && s.status.images.every((i: any) => i.checked_at >= since)) return s;
      assert.ok(Date.now() < deadline, `no run ended: ${JSON.stringify(s)}\n${[...manager.lines, ...manager.stderr].filter((l) => /pull/.test(l)).join("\n")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const cell = (s: any, image: string, host: string) => {
    const node = s.status.nodes.find((n: any) => n.hostname === host);
    return s.status.cells.find((c: any) => c.image === image && c.host_id === node?.host_id);
  };

  before(async () => {
    skip = await registryToolsMissing();
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-puller-"));
    registry = await startRegistry("none");
    for (const [repo, layers] of [
      ["team/app1", 2],
      ["team/app2", 1],
    ] as const) {
      const img = await buildOciImage({ platforms: ["linux/amd64"], layers, layerBytes: 150 * 1024 });
      await pushImage(img, registry, repo);
      images.push(img);
    }
    managed = await startManagedCluster(dir, { rootPassword: ROOT_PASSWORD, schedulerArgs: ["--hosts-report-ms", "300"] });
    ({ manager, managerUrl, cluster, token, clusterToken } = managed);
    peers = {};
    for (const [name, zone] of [
      ["peer-a", "a"],
      ["peer-b", "a"],
      ["peer-c", "b"],
    ]) {
      peers[name!] = await cluster.addPeer(name!, { args: ["--label", `zone=${zone}`] });
    }
    // Until the inventory knows all four hosts.
    for (;;) {
      const r = await api(`${managerUrl}/oapi/v1/peers?state=active`, { token: clusterToken });
      if (r.json?.length === 4) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  after(async () => {
    await managed?.stop();
    await containerd?.stop();
    await registry?.stop();
    for (const img of images) await img.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the Image Puller's ConfigMap, applied unchanged: the two peers it selects become warm, each blob fetched from the registry once", async (t) => {
    if (skip) return t.skip(skip);
    const [app1, app2] = images as [BuiltImage, BuiltImage];
    const configMap = join(dir, "configmap.yaml");
    await writeFile(
      configMap,
      `apiVersion: v1
kind: ConfigMap
metadata:
  name: kubernetes-image-puller
  namespace: k8s-image-puller
data:
  DAEMONSET_NAME: kubernetes-image-puller
  DEPLOYMENT_NAME: kubernetes-image-puller
  NAMESPACE: k8s-image-puller
  CACHING_INTERVAL_HOURS: "1"
  CACHING_MEMORY_REQUEST: "10Mi"
  CACHING_MEMORY_LIMIT: "20Mi"
  CACHING_CPU_REQUEST: ".05"
  CACHING_CPU_LIMIT: ".2"
  NODE_SELECTOR: '{"zone": "a"}'
  IMAGES: "app1=${registry.host}/team/app1:${app1.tag};app2=${registry.host}/team/app2:${app2.tag};"
`,
    );
    const since = new Date().toISOString();
    const applied = await runKiln(["puller", "apply", "--config-map", configMap, "--insecure-registry", registry.host, "--manager", managerUrl], {
      env: { KILN_TOKEN: token },
    });
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^created pull schedule (\d+) "kubernetes-image-puller": 2 image\(s\) every 1 h on zone=a/);
    assert.match(applied.stderr, /ignored CACHING_MEMORY_LIMIT: no per-image container runs/);
    assert.match(applied.stderr, /ignored NAMESPACE: /);
    scheduleId = Number(/pull schedule (\d+)/.exec(applied.stdout)![1]);

    const s = await nextRunEnded(since);
    assert.deepEqual(
      s.images.map((i: any) => i.name),
      ["app1", "app2"],
    );
    assert.equal(s.status.images[0].digest, app1.platforms["linux/amd64"]!.manifest);
    for (const image of ["app1", "app2"]) {
      for (const host of ["peer-a", "peer-b"]) assert.equal(cell(s, image, host)?.state, "warm", `${image} on ${host}: ${JSON.stringify(s.status)}`);
      for (const host of ["peer-c", "seed-1"]) assert.equal(cell(s, image, host)?.state, "not_selected", `${image} on ${host}`);
    }
    for (const img of [app1, app2]) {
      for (const d of blobsOf(img)) {
        assert.equal(registry.blobGets(d), 1, `${d} fetched from the registry once in all`);
        assert.ok((await holds(peers["peer-a"]!, d)) && (await holds(peers["peer-b"]!, d)), `${d} in both selected caches`);
        assert.equal(await holds(peers["peer-c"]!, d), false, `${d} not on the unselected peer`);
      }
    }
    // Applied again: the same schedule is updated, not duplicated, and checked again at once.
    const reapplied = new Date().toISOString();
    const again = await runKiln(["puller", "apply", "--config-map", configMap, "--insecure-registry", registry.host, "--manager", managerUrl], {
      env: { KILN_TOKEN: token },
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^updated pull schedule ${scheduleId} `));
    await nextRunEnded(reapplied);
  });

  it("a node that joins after a run, and one that gains the selector's label, are warmed when they appear (not at the next run, an hour on), from the peers", async (t) => {
    if (skip) return t.skip(skip);
    // peer-relabel starts outside the selector, on a fixed upload port so that its host ID survives a restart.
    const port = await freePort();
    const relabelled = await cluster.addPeer("peer-relabel", { args: ["--label", "zone=b", "--port", String(port)] });
    for (;;) {
      const r = await api(`${managerUrl}/oapi/v1/peers?state=active&q=peer-relabel`, { token: clusterToken });
      if (r.json?.length === 1) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const since = new Date().toISOString();
    const run = await api(`${managerUrl}/oapi/v1/pull-schedules/${scheduleId}/run`, { token, method: "POST" });
    assert.equal(run.status, 200, JSON.stringify(run.json));
    const ran = await nextRunEnded(since);
    assert.equal(cell(ran, "app1", "peer-relabel")?.state, "not_selected");
    assert.ok(Date.parse(ran.next_run_at) - Date.now() > 50 * 60_000, `the next whole run is an hour away: ${ran.next_run_at}`);

    // A new node in the selector, and peer-relabel restarted with the selector's label.
    peers["peer-new"] = await cluster.addPeer("peer-new", { args: ["--label", "zone=a"] });
    await relabelled.proc.kill();
    peers["peer-relabel"] = await cluster.addPeer("peer-relabel", { dataDir: relabelled.dataDir, args: ["--label", "zone=a", "--port", String(port)] });
    let s = ran;
    for (const deadline = Date.now() + 30_000; ; ) {
      s = await schedule();
      const warm = ["peer-new", "peer-relabel"].every((host) => ["app1", "app2"].every((image) => cell(s, image, host)?.state === "warm"));
      if (warm && s.state === "idle") break;
      assert.ok(Date.now() < deadline, `peer-new and peer-relabel not warmed: ${JSON.stringify(s.status)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(s.next_run_at, ran.next_run_at, "the schedule's next whole run is unchanged");
    for (const host of ["peer-a", "peer-b"]) assert.equal(cell(s, "app1", host)?.state, "warm", `${host} kept in the status`);
    assert.ok(
      manager.lines.some((l) => l.includes("warming nodes that joined since its last run") && l.includes("peer-new")),
      "the manager says which nodes it warms",
    );
    for (const img of images.slice(0, 2)) {
      for (const d of blobsOf(img)) {
        for (const host of ["peer-new", "peer-relabel"]) assert.ok(await holds(peers[host]!, d), `${d} in ${host}'s cache`);
        assert.equal(registry.blobGets(d), 1, `${d} still fetched from the registry once in all: the new nodes got it from the peers`);
      }
    }
  });

  it("a moved tag: the next run fetches only the new blobs, once, and shows the new digest warm", async (t) => {
    if (skip) return t.skip(skip);
    const moved = await buildOciImage({ platforms: ["linux/amd64"], layers: 2, layerBytes: 150 * 1024, tag: images[0]!.tag });
    images.push(moved);
    await pushImage(moved, registry, "team/app1");
    const since = new Date().toISOString();
    const run = await api(`${managerUrl}/oapi/v1/pull-schedules/${scheduleId}/run`, { token, method: "POST" });
    assert.equal(run.status, 200, JSON.stringify(run.json));
    const s = await nextRunEnded(since);
    assert.equal(s.status.images[0].digest, moved.platforms["linux/amd64"]!.manifest, "the tag resolved to its new digest");
    for (const host of ["peer-a", "peer-b"]) assert.equal(cell(s, "app1", host)?.state, "warm");
    for (const d of blobsOf(moved)) {
      assert.equal(registry.blobGets(d), 1, `new blob ${d} fetched once`);
      assert.ok(await holds(peers["peer-a"]!, d));
    }
    for (const d of [...blobsOf(images[0]!), ...blobsOf(images[1]!)]) assert.equal(registry.blobGets(d), 1, `${d} not fetched again`);
  });

  it("an image the registry does not have, and one its registry refuses (401), fail with the reason on every selected node; the others stay warm", async (t) => {
    if (skip) return t.skip(skip);
    const locked = await startRegistry("basic");
    t.after(() => locked.stop());
    const list = [
      `app1=${registry.host}/team/app1:${images[0]!.tag}`,
      `app2=${registry.host}/team/app2:${images[1]!.tag}`,
      `gone=${registry.host}/team/gone:v9`,
      `locked=${locked.host}/team/app1:v1`,
    ].join(";");
    const since = new Date().toISOString();
    const patched = await api(`${managerUrl}/oapi/v1/pull-schedules/${scheduleId}`, {
      token,
      method: "PATCH",
      body: { images: list, insecure_registries: [registry.host, locked.host] },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.json));
    const s = await nextRunEnded(since);
    const gone = s.status.images.find((i: any) => i.name === "gone");
    assert.equal(gone.digest, null);
    assert.match(gone.error, /team\/gone:v9.*(not found|404)/);
    const refused = s.status.images.find((i: any) => i.name === "locked");
    assert.match(refused.error, /401/);
    for (const host of ["peer-a", "peer-b"]) {
      assert.equal(cell(s, "locked", host)?.state, "failed");
      assert.match(cell(s, "locked", host)?.reason, /401/);
      assert.equal(cell(s, "gone", host)?.state, "failed");
      assert.match(cell(s, "gone", host)?.reason, /not found|404/);
      assert.equal(cell(s, "app1", host)?.state, "warm");
      assert.equal(cell(s, "app2", host)?.state, "warm");
    }
  });

  it("kiln puller list, get (the image × node matrix), run and delete; a plain-HTTP registry not named insecure fails with how to fix it", async (t) => {
    if (skip) return t.skip(skip);
    const env = { KILN_TOKEN: token };
    const created = await api(`${managerUrl}/oapi/v1/pull-schedules`, {
      token,
      body: { name: "plain-http", images: `plain=${registry.host}/team/app1:${images[0]!.tag}`, interval_hours: 1, node_selector: { zone: "a" } },
    });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    const id = created.json.id as number;
    const ran = await runKiln(["puller", "run", "plain-http", "--manager", managerUrl], { env });
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, new RegExp(`^pull schedule ${id} "plain-http" is (running|idle); kiln puller get ${id} shows the matrix\n$`));
    for (const deadline = Date.now() + 20_000; ; ) {
      const s = (await api(`${managerUrl}/oapi/v1/pull-schedules/${id}`, { token })).json;
      if (s.state === "idle" && s.status?.images[0]?.error) break;
      assert.ok(Date.now() < deadline, JSON.stringify(s));
      await new Promise((r) => setTimeout(r, 200));
    }
    const got = await runKiln(["puller", "get", "plain-http", "--manager", managerUrl], { env });
    assert.equal(got.code, 0, got.stderr);
    const [head, columns] = got.stdout.split("\n");
    assert.match(head!, new RegExp(`^pull schedule ${id} "plain-http": 1 image\\(s\\), every 1 h, idle`));
    // Each node by IP and upload port: peers on one host (one IP) are told apart.
    assert.match(
      columns!,
      new RegExp(
        `^IMAGE\\s+DIGEST\\s+.*peer-a \\(127\\.0\\.0\\.1:${peers["peer-a"]!.uploadPort}\\).*peer-b \\(127\\.0\\.0\\.1:${peers["peer-b"]!.uploadPort}\\)`,
      ),
    );
    assert.ok(got.stdout.includes(`the registry answered plain HTTP; pass --insecure-registry ${registry.host}`), got.stdout);
    const list = await runKiln(["puller", "list", "--manager", managerUrl], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+NAME\s+IMAGES\s+WHEN/);
    assert.match(list.stdout, new RegExp(`\n${id}\\s+plain-http\\s+1\\s+every 1 h\\s+zone=a\\s+idle`));
    const deleted = await runKiln(["puller", "delete", String(id), "--manager", managerUrl], { env });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted pull schedule ${id} "plain-http"\n`);
    const missing = await runKiln(["puller", "get", "plain-http", "--manager", managerUrl], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^kiln puller get: no pull schedule is named "plain-http" \(kiln puller list shows them\)\n$/);
  });

  it("with containerd on a peer's node: the run has it import the image through the peer; it lists the image and holds every blob, the registry serving none again", async (t) => {
    if (skip) return t.skip(skip);
    const missing = await containerdToolsMissing("pull schedules into containerd");
    if (missing) return t.skip(missing);
    containerd = new Containerd(join(dir, "containerd"));
    await containerd.start();
    ctrArgvLog = join(dir, "ctr-argv.log");
    const ctrWrapper = join(dir, "ctr-recording");
    await writeFile(ctrWrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${ctrArgvLog}'\nexec ctr "$@"\n`);
    await chmod(ctrWrapper, 0o755);
    const node = await cluster.addPeer("peer-d", {
      args: [
        ...["--label", "zone=d", "--containerd-address", containerd.sock, "--containerd-snapshotter", "native", "--proxy-allow-host", "127.0.0.1"],
        ...["--ctr", ctrWrapper],
      ],
    });
    for (;;) {
      const r = await api(`${managerUrl}/oapi/v1/peers?labels=zone=d`, { token: clusterToken });
      if (r.json?.length === 1) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const app2 = images[1]!;
    const ref = `${registry.host}/team/app2:${app2.tag}`;
    const since = new Date().toISOString();
    const created = await api(`${managerUrl}/oapi/v1/pull-schedules`, {
      token,
      body: { name: "runtime", images: `app2=${ref}`, node_selector: { zone: "d" }, insecure_registries: [registry.host] },
    });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    scheduleId = created.json.id;
    const s = await nextRunEnded(since);
    const c = cell(s, "app2", "peer-d");
    assert.equal(c?.state, "warm", JSON.stringify(s.status));
    assert.match(c.reason, /pulled into containerd \(k8s\.io\) through this peer/);
    const { stdout } = await containerd.ctr(["--namespace", "k8s.io", "images", "ls"]);
    const row = stdout.split("\n").find((l) => l.startsWith(`${ref} `));
    assert.ok(row?.includes(app2.digest), `containerd lists ${ref} at ${app2.digest}:\n${stdout}`);
    for (const d of blobsOf(app2)) {
      assert.ok(await exists(join(containerd.contentDir, d.slice("sha256:".length))), `${d} in containerd's content store`);
      assert.equal(registry.blobGets(d), 1, `${d}: the registry still served it once in all`);
      assert.ok(await holds(node, d));
    }
    // The next run finds it there and pulls nothing.
    const again = new Date().toISOString();
    await api(`${managerUrl}/oapi/v1/pull-schedules/${scheduleId}/run`, { token, method: "POST" });
    const next = await nextRunEnded(again);
    assert.match(cell(next, "app2", "peer-d").reason, /containerd already holds/);
  });

  it("a private image (registry behind htpasswd): containerd imports it with the schedule's credentials, which appear on no command line and in no log", async (t) => {
    if (skip) return t.skip(skip);
    if (!containerd) return t.skip("needs the containerd test before it");
    const locked = await startRegistry("basic");
    t.after(() => locked.stop());
    const img = await buildOciImage({ platforms: ["linux/amd64"], layers: 1, layerBytes: 64 * 1024 });
    t.after(() => img.cleanup());
    await pushImage(img, locked, "team/private");
    const ref = `${locked.host}/team/private:${img.tag}`;
    const since = new Date().toISOString();
    const created = await api(`${managerUrl}/oapi/v1/pull-schedules`, {
      token,
      body: {
        name: "runtime-private",
        images: `private=${ref}`,
        node_selector: { zone: "d" },
        insecure_registries: [locked.host],
        username: REGISTRY_USER,
        password: REGISTRY_PASSWORD,
      },
    });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    scheduleId = created.json.id;
    const s = await nextRunEnded(since);
    const c = cell(s, "private", "peer-d");
    assert.equal(c?.state, "warm", JSON.stringify(s.status));
    assert.match(c.reason, /pulled into containerd \(k8s\.io\) through this peer/);
    const { stdout } = await containerd.ctr(["--namespace", "k8s.io", "images", "ls"]);
    assert.ok(
      stdout.split("\n").some((l) => l.startsWith(`${ref} `) && l.includes(img.digest)),
      `containerd lists ${ref}:\n${stdout}`,
    );
    // Neither the password nor the Basic value made of it is on a command line or in a log; the credentials file is gone.
    const secrets = [REGISTRY_PASSWORD, Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString("base64")];
    const argv = await readFile(ctrArgvLog, "utf8");
    const logs = [manager, cluster.scheduler, ...cluster.peers.map((p) => p.proc)].flatMap((p) => [...p.lines, ...p.stderr]).join("\n");
    for (const secret of secrets) {
      assert.ok(!argv.includes(secret), `a ctr command line carries the credentials:\n${argv}`);
      assert.ok(!logs.includes(secret), "a process logged the credentials");
    }
    const hostsDirs = [...argv.matchAll(/--hosts-dir (\S+)/g)].map((m) => m[1]!);
    const privateDir = hostsDirs.at(-1)!;
    assert.notEqual(privateDir, hostsDirs[0], `the private pull had a hosts directory of its own:\n${argv}`);
    assert.equal(await exists(privateDir), false, `${privateDir} (its credentials file) is removed after the pull`);
    for (const d of [...img.platforms["linux/amd64"]!.layers, img.platforms["linux/amd64"]!.config]) {
      assert.equal(locked.blobGets(d), 1, `${d}: fetched from the registry once, containerd got it from the peer`);
    }
  });

  it("refuses what it cannot run: a bad list, a bad cron, both interval and cron, a scope cluster token; credentials are never returned", async (t) => {
    if (skip) return t.skip(skip);
    const create = (body: unknown, as = token) => api(`${managerUrl}/oapi/v1/pull-schedules`, { token: as, body });
    const bad: [unknown, RegExp][] = [
      [{ name: "x", images: "app1" }, /images: entry 1 \("app1"\) is not NAME=IMAGE/],
      [{ name: "x", images: "a=b c" }, /images: entry 1 .*must be an image reference/],
      [{ name: "x", images: "a=r/x:1", cron: "not a cron" }, /cron: /],
      [{ name: "x", images: "a=r/x:1", cron: "0 * * * *", interval_hours: 2 }, /cron: give interval_hours or cron, not both/],
      [{ name: "x", images: "a=r/x:1", scheduler_cluster_ids: [99] }, /scheduler_cluster_ids: unknown scheduler cluster 99/],
      [{ name: "kubernetes-image-puller", images: "a=r/x:1" }, /exists/],
    ];
    for (const [body, message] of bad) {
      const r = await create(body);
      assert.ok(r.status === 422 || r.status === 409, `${JSON.stringify(body)} → ${r.status}`);
      assert.match(r.json.message, message);
    }
    // One floor for both timings, one limit for both list forms, no reference ctr would read as an option.
    const many = Array.from({ length: 501 }, (_, i) => ({ name: `i${i}`, image: `r/x:${i}` }));
    const refused: [unknown, RegExp][] = [
      [{ name: "x", images: "a=r/x:1", cron: "* * * * * *" }, /^cron: "\* \* \* \* \* \*" runs 1 s apart; a pull schedule runs at most once a minute/],
      [{ name: "x", images: "a=r/x:1", cron: "0,30 * * * * *" }, /^cron: "0,30 \* \* \* \* \*" runs 30 s apart; /],
      [{ name: "x", images: "a=r/x:1", interval_hours: 0.01 }, /^interval_hours: must be at least 1\/60 \(one minute\)/],
      [{ name: "x", images: many.map((i) => `${i.name}=${i.image}`).join(";") }, /^images: at most 500 images in one schedule \(501 given\)$/],
      [{ name: "x", images: many }, /^images: at most 500 images in one schedule \(501 given\)$/],
      [{ name: "x", images: "a=--x" }, /^images: entry 1 \("a=--x"\): image must not start with '-' \(ctr would read it as an option\)$/],
      [
        { name: "x", images: [{ name: "a", image: "-kregistry.example/x:1" }] },
        /^images\.0\.image: must not start with '-' \(ctr would read it as an option\)$/,
      ],
    ];
    for (const [body, message] of refused) {
      const r = await create(body);
      assert.equal(r.status, 422, `${JSON.stringify(body).slice(0, 200)} → ${r.status} ${JSON.stringify(r.json)}`);
      assert.match(r.json.message, message);
    }
    const minute = await create({ name: "every-minute", images: "a=r/x:1", cron: "0 * * * * *", enabled: false });
    assert.equal(minute.status, 200, `a 6-field cron with one second runs once a minute: ${JSON.stringify(minute.json)}`);
    const quicker = await api(`${managerUrl}/oapi/v1/pull-schedules/${minute.json.id}`, { token, method: "PATCH", body: { cron: "*/10 * * * * *" } });
    assert.equal(quicker.status, 422, JSON.stringify(quicker.json));
    assert.match(quicker.json.message, /^cron: "\*\/10 \* \* \* \* \*" runs 10 s apart; /);
    assert.equal((await create({ name: "y", images: "a=r/x:1" }, clusterToken)).status, 403);
    const withCreds = await create({ name: "private", images: "a=r/x:1", username: "alice", password: "pw-not-shown-7", enabled: false });
    assert.equal(withCreds.status, 200, JSON.stringify(withCreds.json));
    assert.equal(withCreds.json.has_credentials, true);
    assert.equal(withCreds.json.next_run_at, null, "a disabled schedule does not run");
    const listed = JSON.stringify((await api(`${managerUrl}/oapi/v1/pull-schedules`, { token })).json);
    assert.ok(!listed.includes("pw-not-shown-7") && !listed.includes("alice"));
  });
});
