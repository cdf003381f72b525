/**
 * End to end, real processes on loopback: `kiln manager`, `kiln scheduler`, a seed
 * peer and a peer, Debian's docker-registry with images pushed by skopeo. Seed
 * 001's request bodies reach SUCCESS; a later `kiln get` is served by the swarm
 * without touching the registry again; FAILURE paths end with a log naming the
 * cause; a pending job survives a manager restart.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { runKiln, spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { buildOciImage, pushImage, registryToolsMissing, startRegistry, freePort, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { REGISTRY_PASSWORD, REGISTRY_USER } from "../helpers/registry-fixtures.js";
import { api, waitForJob } from "../helpers/manager.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";

const ROOT_PASSWORD = "e2e-root-password";
const basic = `Basic ${Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString("base64")}`;

/** Seed 001's image body, verbatim but for the URL and the credentials. */
const seedImageBody = (url: string, username: string, password: string) => `{
    "type": "preheat",
    "args": {
        "type": "image",
        "url": "${url}",
        "filteredQueryParams": "Expires&Signature",
        "username": "${username}",
        "password": "${password}"
    }
}`;

/** Seed 001's file body, verbatim (trailing comma included) but for the URL. */
const seedFileBody = (url: string) => `{
    "type": "preheat",
    "args": {
        "type": "file",
        "url": "${url}",
    }
}`;

/** An origin whose /gated/* answers wait until `open()` (a job that stays pending as long as the test wants). */
async function startGatedOrigin(data: Buffer) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let hits = 0;
  const server = http.createServer(async (_req, res) => {
    hits++;
    await gate;
    res.writeHead(200, { "content-length": data.length }).end(data);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    open,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("preheat end to end", () => {
  let skip: string | undefined;
  let dir: string;
  let registry: TestRegistry;
  let single: BuiltImage;
  let multi: BuiltImage;
  let cluster: TestCluster;
  let seed: PeerHandle;
  let peer: PeerHandle;
  let manager: KilnProcess;
  let managerUrl: string;
  let token: string;
  let origin: TestOrigin;
  let managerPort: number;

  // A fixed port, so that the scheduler and seed peer find the manager again after it restarts.
  const startManagerProc = () =>
    spawnKiln(
      [
        "manager",
        "--host",
        "127.0.0.1",
        "--port",
        String(managerPort),
        "--database-url",
        `sqlite:${join(dir, "manager.db")}`,
        "--job-poll-ms",
        "100",
        "--keepalive-ms",
        "500",
      ],
      { env: { KILN_ROOT_PASSWORD: ROOT_PASSWORD } },
    );

  /** Until the scheduler and the seed peer show up active in cluster-1. */
  const membersReady = async () => {
    for (;;) {
      const r = await api(`${managerUrl}/oapi/v1/clusters`, { token });
      const c = r.json?.find?.((x: any) => x.name === "cluster-1");
      if (c?.schedulers.some((s: any) => s.state === "active") && c?.seed_peers.some((s: any) => s.state === "active" && s.hostname === "seed-1")) return c;
      await new Promise((res) => setTimeout(res, 100));
    }
  };

  before(async () => {
    skip = await registryToolsMissing();
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-preheat-e2e-"));
    registry = await startRegistry("basic");
    single = await buildOciImage({ platforms: ["linux/amd64"], layers: 2, layerBytes: 300 * 1024 });
    multi = await buildOciImage({ platforms: ["linux/amd64", "linux/arm64/v8"], layers: 2, layerBytes: 100 * 1024 });
    await pushImage(single, registry, "library/alpine");
    await pushImage(multi, registry, "team/multi");
    origin = await startOrigin();
    managerPort = await freePort();
    manager = await startManagerProc();
    managerUrl = `http://127.0.0.1:${manager.ready.port as number}`;
    // The scheduler and the seed peer register with the manager themselves and keep alive.
    cluster = await TestCluster.start({ schedulerArgs: ["--manager", managerUrl, "--advertise-ip", "127.0.0.1"] });
    seed = await cluster.addPeer("seed-1", { seed: true, args: ["--manager", managerUrl] });
    peer = await cluster.addPeer("peer-1");
    const created = await runKiln(["token", "create", "--scope", "job", "--scope", "cluster", "--manager", managerUrl], {
      env: { KILN_MANAGER_PASSWORD: ROOT_PASSWORD },
    });
    assert.equal(created.code, 0, created.stderr);
    token = created.stdout.trim();
    assert.match(token, /^kiln_pat_/);
    const c = await membersReady();
    assert.equal(c.seed_peers[0].port, seed.uploadPort);
  });

  after(async () => {
    await cluster?.stop();
    await manager?.kill();
    await registry?.stop();
    await origin?.close();
    await single?.cleanup();
    await multi?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the documented image body (single-arch, registry with basic auth) → SUCCESS; a later kiln get of a layer comes from the swarm", async (t) => {
    if (skip) return t.skip(skip);
    const url = `${registry.url}/v2/library/alpine/manifests/${single.tag}`;
    const r = await api(`${managerUrl}/oapi/v1/jobs`, { token, raw: seedImageBody(url, REGISTRY_USER, REGISTRY_PASSWORD) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.state, "PENDING");
    assert.deepEqual(r.json.args, {
      filteredQueryParams: "Expires&Signature",
      headers: null,
      password: "",
      pieceLength: 4194304,
      platform: "",
      tag: "",
      type: "image",
      url,
      username: "",
    });
    assert.deepEqual(
      r.json.scheduler_clusters.map((c: any) => c.name),
      ["cluster-1"],
    );
    const job = await waitForJob(managerUrl, token, r.json.id);
    assert.equal(job.state, "SUCCESS", JSON.stringify(job.result, null, 2));
    const p = single.platforms["linux/amd64"]!;
    const blobs = [p.config, ...p.layers];
    assert.deepEqual(new Set(job.result.urls), new Set(blobs.map((d) => `${registry.url}/v2/library/alpine/blobs/${d}`)));
    assert.equal(job.result.success_tasks.length, blobs.length);
    for (const s of job.result.success_tasks) {
      assert.equal(s.hostname, "seed-1");
      assert.equal(s.ip, "127.0.0.1");
      // The preheat task ID is the one a default pull computes (blob digest).
      assert.equal(s.task_id, taskIdFor({ url: s.url, filteredQueryParams: ["Expires", "Signature", "ns"] }));
    }
    assert.deepEqual(job.result.failure_tasks, []);
    for (const d of blobs) assert.equal(registry.blobGets(d), 1, `${d} fetched once, by the seed peer`);

    const layer = p.layers[1]!;
    const out = join(dir, "layer.tgz");
    const got = await cluster.get(peer, `${registry.url}/v2/library/alpine/blobs/${layer}`, out, ["-H", `Authorization: ${basic}`]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(
      "sha256:" +
        createHash("sha256")
          .update(await readFile(out))
          .digest("hex"),
      layer,
    );
    assert.equal(registry.blobGets(layer), 1, "the pull did not touch the registry again");
  });

  it("kiln preheat image picks linux/arm64 from a multi-arch index and preheats only its blobs", async (t) => {
    if (skip) return t.skip(skip);
    const url = `${registry.url}/v2/team/multi/manifests/${multi.tag}`;
    const r = await runKiln(["preheat", "image", url, "--manager", managerUrl, "--username", REGISTRY_USER, "--platform", "linux/arm64", "--poll-ms", "200"], {
      env: { KILN_TOKEN: token, KILN_REGISTRY_PASSWORD: REGISTRY_PASSWORD },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SUCCESS: job \d+ preheated 3 URL\(s\) on seed-1/);
    const arm = multi.platforms["linux/arm64/v8"]!;
    const amd = multi.platforms["linux/amd64"]!;
    for (const d of [arm.config, ...arm.layers]) assert.equal(registry.blobGets(d), 1);
    for (const d of [amd.config, ...amd.layers]) assert.equal(registry.blobGets(d), 0);
  });

  it("the documented file body → SUCCESS; kiln get meets the same task without going to the origin", async (t) => {
    if (skip) return t.skip(skip);
    const file = makeFile(3 * 1024 * 1024);
    origin.add("/files/data.bin", file);
    const url = `${origin.url}/files/data.bin?Expires=123&Signature=abc`;
    const r = await api(`${managerUrl}/oapi/v1/jobs`, { token, raw: seedFileBody(url) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const job = await waitForJob(managerUrl, token, r.json.id);
    assert.equal(job.state, "SUCCESS", JSON.stringify(job.result, null, 2));
    const sentAfterPreheat = origin.totalSent();
    assert.equal(sentAfterPreheat, file.data.length);
    // A pull with other signature values and default flags lands on the preheated task.
    const out = join(dir, "data.bin");
    const got = await cluster.get(peer, `${origin.url}/files/data.bin?Expires=999&Signature=zzz`, out);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(
      createHash("sha256")
        .update(await readFile(out))
        .digest("hex"),
      file.sha256,
    );
    assert.equal(origin.totalSent(), sentAfterPreheat, "served from the swarm");
    assert.equal(
      job.result.success_tasks[0].task_id,
      taskIdFor({ url: `${origin.url}/files/data.bin?Expires=999&Signature=zzz`, filteredQueryParams: ["Expires", "Signature", "ns"] }),
    );
  });

  it("scope all_peers with concurrent_peer_count 1: every host preheats, one after another", async (t) => {
    if (skip) return t.skip(skip);
    const extra = await cluster.addPeer("peer-2");
    // A slow origin (about 0.5 s for the file), so that hosts fetching at once would overlap.
    const slow = await startOrigin({ rateBytes: 4 * 1024 * 1024 });
    t.after(() => slow.close());
    const file = makeFile(2 * 1024 * 1024);
    slow.add("/files/one-at-a-time.bin", file);
    const url = `${slow.url}/files/one-at-a-time.bin`;
    const taskId = taskIdFor({ url, filteredQueryParams: ["Expires", "Signature"] });
    // Watch the scheduler while the job runs: how many hosts fetch the task at the same moment.
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    let busiest = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const st = await scheduler.taskStatus(taskId).catch(() => undefined);
        const fetching = st?.peers.filter((p) => p.state === "pending" || p.state === "running" || p.state === "back_to_source").length ?? 0;
        busiest = Math.max(busiest, fetching);
        await new Promise((res) => setTimeout(res, 10));
      }
    })();
    const r = await api(`${managerUrl}/oapi/v1/jobs`, {
      token,
      body: { type: "preheat", args: { type: "file", url, scope: "all_peers", concurrent_peer_count: 1 } },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const job = await waitForJob(managerUrl, token, r.json.id);
    watching = false;
    await watch;
    assert.equal(job.state, "SUCCESS", JSON.stringify(job.result, null, 2));
    assert.equal(job.result.success_tasks.length, 3, `seed-1, peer-1 and ${extra.name} each preheated: ${JSON.stringify(job.result.success_tasks)}`);
    assert.equal(busiest, 1, "never more than one host fetching at once");
    assert.equal(slow.totalSent(), file.data.length, "the origin sent the file once");
  });

  it("ends FAILURE with a log naming the cause: 401 from the registry, unknown tag, platform not in the index, file 404, an origin that breaks off, unreachable registry", async (t) => {
    if (skip) return t.skip(skip);
    const closed = `http://127.0.0.1:${await freePort()}`;
    origin.add("/files/half.bin", makeFile(2 * 1024 * 1024));
    const cases: [string, RegExp][] = [
      [
        seedImageBody(`${registry.url}/v2/library/alpine/manifests/${single.tag}`, REGISTRY_USER, "wrong-password"),
        /refused access \(401 Unauthorized\): check the username and password/,
      ],
      [
        seedImageBody(`${registry.url}/v2/library/alpine/manifests/no-such-tag`, REGISTRY_USER, REGISTRY_PASSWORD),
        /library\/alpine:no-such-tag: tag not found in the registry \(404/,
      ],
      [
        JSON.stringify({
          type: "preheat",
          args: {
            type: "image",
            url: `${registry.url}/v2/team/multi/manifests/${multi.tag}`,
            platform: "linux/s390x",
            username: REGISTRY_USER,
            password: REGISTRY_PASSWORD,
          },
        }),
        /platform linux\/s390x is not in the image index \(available: linux\/amd64, linux\/arm64\/v8\)/,
      ],
      [seedFileBody(`${origin.url}/files/missing.bin`), /404/],
      // Every answer (first and resumed) breaks off halfway: the cause, not "job timed out".
      [seedFileBody(`${origin.url}/reset/files/half.bin`), /origin closed after \d+ of \d+ bytes/],
      [seedImageBody(`${closed}/v2/library/alpine/manifests/3.19`, "", ""), /is unreachable: connection refused/],
    ];
    const ids: number[] = [];
    for (const [body] of cases) {
      const r = await api(`${managerUrl}/oapi/v1/jobs`, { token, raw: body });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      ids.push(r.json.id);
    }
    for (const [i, [, cause]] of cases.entries()) {
      const job = await waitForJob(managerUrl, token, ids[i]!);
      assert.equal(job.state, "FAILURE");
      assert.match(job.result.error, cause);
      assert.ok(
        job.result.log.some((l: string) => cause.test(l)),
        job.result.log.join("\n"),
      );
      assert.ok(job.result.failure_tasks.length >= 1);
    }
    // The CLI exits non-zero and prints the log.
    const cli = await runKiln(["preheat", "file", `${origin.url}/files/missing.bin`, "--manager", managerUrl, "--poll-ms", "200"], {
      env: { KILN_TOKEN: token },
    });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /FAILURE: job \d+: .*404/);
  });

  it("a pending job survives a manager restart, and one whose timeout passed while it was down ends FAILURE", async (t) => {
    if (skip) return t.skip(skip);
    const data = makeFile(512 * 1024);
    const gated = await startGatedOrigin(data.data);
    try {
      const r = await api(`${managerUrl}/oapi/v1/jobs`, { token, raw: seedFileBody(`${gated.url}/gated/a.bin`) });
      const short = await api(`${managerUrl}/oapi/v1/jobs`, {
        token,
        body: { type: "preheat", args: { type: "file", url: `${gated.url}/gated/b.bin`, timeout: 1 } },
      });
      assert.equal(r.status, 200);
      assert.equal(short.status, 200);
      // The seed peer is at the origin, waiting: the jobs are running.
      while (gated.hits() < 1) await new Promise((res) => setTimeout(res, 50));
      await manager.kill("SIGKILL");
      await new Promise((res) => setTimeout(res, 1100)); // the short job's deadline passes while the manager is down
      manager = await startManagerProc();
      const shortJob = await waitForJob(managerUrl, token, short.json.id);
      assert.equal(shortJob.state, "FAILURE");
      assert.match(shortJob.result.error, /timed out after 1 s|timeout passed/);
      const pending = await api(`${managerUrl}/oapi/v1/jobs/${r.json.id}`, { token });
      assert.equal(pending.json.state, "PENDING");
      gated.open();
      const job = await waitForJob(managerUrl, token, r.json.id);
      assert.equal(job.state, "SUCCESS", JSON.stringify(job.result, null, 2));
      assert.ok(
        job.result.log.some((l: string) => /resumed after a manager restart/.test(l)),
        job.result.log.join("\n"),
      );
    } finally {
      gated.open();
      await gated.close();
    }
  });

  it("credentials in headers and URL user-info reach the origin but are never stored in clear nor returned", async (t) => {
    if (skip) return t.skip(skip);
    const file = makeFile(256 * 1024);
    origin.add("/private/cred.bin", file);
    const bare = `${origin.url}/private/cred.bin`;
    const withUser = bare.replace("http://", "http://alice:pw-in-url-91@");
    const r = await api(`${managerUrl}/oapi/v1/jobs`, {
      token,
      body: {
        type: "preheat",
        args: { type: "file", url: withUser, headers: { "X-Api-Token": "tok-in-header-42", Cookie: "sid=cookie-77", "X-Trace": "kept" } },
      },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.args.url, bare);
    assert.deepEqual(r.json.args.headers, { "X-Trace": "kept" });
    const job = await waitForJob(managerUrl, token, r.json.id);
    assert.equal(job.state, "SUCCESS", JSON.stringify(job.result, null, 2));
    // The origin got every credential it was meant to get, and once none: the seed asks whether it serves the file to anyone.
    const seen = origin.requests.filter((q) => q.path === "/private/cred.bin" && q.headers.authorization);
    assert.equal(seen.length, 1);
    const anonymous = origin.requests.filter((q) => q.path === "/private/cred.bin" && !q.headers.authorization);
    assert.deepEqual(
      anonymous.map((q) => [q.headers["x-api-token"], q.headers.cookie]),
      [[undefined, undefined]],
    );
    assert.equal(seen[0]!.headers["x-api-token"], "tok-in-header-42");
    assert.equal(seen[0]!.headers.cookie, "sid=cookie-77");
    assert.equal(seen[0]!.headers.authorization, `Basic ${Buffer.from("alice:pw-in-url-91").toString("base64")}`);
    // Nothing answers with them, and the database files hold none of them in clear.
    const listed = JSON.stringify((await api(`${managerUrl}/oapi/v1/jobs?per_page=100`, { token })).json);
    const secrets = ["pw-in-url-91", "tok-in-header-42", "cookie-77"];
    for (const secret of secrets) assert.ok(!listed.includes(secret) && !JSON.stringify(job).includes(secret), `${secret} returned`);
    for (const f of ["manager.db", "manager.db-wal"]) {
      const bytes = await readFile(join(dir, f)).catch(() => Buffer.alloc(0));
      for (const secret of secrets) assert.equal(bytes.indexOf(secret), -1, `${secret} in ${f}`);
    }
    assert.ok(!manager.lines.some((l) => secrets.some((x) => l.includes(x))), "no credential in the manager's log");
    // Nor the seed peer's task metadata or logs.
    const metas = await readdir(join(seed.dataDir, "tasks"));
    assert.ok(metas.length > 0);
    for (const task of metas) {
      const meta = await readFile(join(seed.dataDir, "tasks", task, "meta.json"), "utf8").catch(() => "");
      for (const secret of secrets) assert.ok(!meta.includes(secret), `${secret} in the seed's ${task}/meta.json`);
    }
    assert.ok(!seed.proc.lines.some((l) => secrets.some((x) => l.includes(x))), "no credential in the seed peer's log");
  });
});
