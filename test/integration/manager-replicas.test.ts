/**
 * Two (at times three) `kiln manager` processes on one MariaDB database and one
 * Redis, as replicas behind a Service would run: jobs submitted to either run
 * exactly once (counted at the scheduler, in the managers' logs and in the job
 * rows), a deletion reaches the replica running the job, a replica that starts
 * does not run again what another runs, a SIGKILLed replica's jobs finish on
 * the other, and the job rate limit and the sign-in limit count for both.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { TestCluster } from "../helpers/cluster.js";
import { runKiln, spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { freePort } from "../helpers/registry.js";
import { api, createToken, ROOT_PASSWORD, waitForJob } from "../helpers/manager.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { createTestDatabase, type TestDatabase } from "../helpers/manager-db.js";
import { createTestRedis, type TestRedis } from "../helpers/redis.js";
import { startManagerKeepAlive, type ManagerKeepAlive } from "../../src/api/manager-client.js";

const JOBS = 50;
const FILE_BYTES = 64 * 1024;

/** Forwards to the scheduler and counts preheat requests per URL: how often a job was dispatched. */
async function startCountingProxy(target: string) {
  const preheats = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (req.method === "POST" && req.url?.endsWith("/preheat")) {
        const url = (JSON.parse(body.toString()) as { download: { url: string } }).download.url;
        preheats.set(url, (preheats.get(url) ?? 0) + 1);
      }
      const fwd = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.on("error", () => res.writeHead(502).end());
      fwd.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    preheats: (url: string) => preheats.get(url) ?? 0,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An origin whose answers wait until `open()`: jobs that stay running as long as the test wants. */
async function startGatedOrigin() {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const hits = new Map<string, number>();
  const data = randomBytes(32 * 1024);
  const server = http.createServer(async (req, res) => {
    hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1);
    await gate;
    res.writeHead(200, { "content-length": data.length }).end(data);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => open(),
    hits: (path: string) => hits.get(path) ?? 0,
    close: () =>
      new Promise<void>((r) => {
        open();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Job IDs this manager started or resumed, one entry per run (its `job_run` log lines). */
/** How many of `jobs` manager `m` has started. */
function runsOnJobs(m: KilnProcess, jobs: { id: number }[]): number {
  const ran = runsOn(m);
  return jobs.filter((j) => ran.includes(j.id)).length;
}

function runsOn(m: KilnProcess): number[] {
  return m.lines.flatMap((l) => {
    if (!l.includes('"job_run"')) return [];
    const e = JSON.parse(l) as { event?: string; job?: number };
    return e.event === "job_run" && typeof e.job === "number" ? [e.job] : [];
  });
}
const count = (ids: number[], id: number) => ids.filter((x) => x === id).length;

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("manager replicas on one database and one Redis", () => {
  let skip: string | undefined;
  let db: TestDatabase;
  let redis: TestRedis;
  let dir: string;
  let origin: TestOrigin;
  let cluster: TestCluster;
  let proxy: Awaited<ReturnType<typeof startCountingProxy>>;
  const keepAlives: ManagerKeepAlive[] = [];
  const managers: KilnProcess[] = [];
  let a: KilnProcess;
  let b: KilnProcess;
  let token: string;
  let clusterId: number;
  const secretKey = randomBytes(32).toString("base64");
  const urlOf = (m: KilnProcess) => `http://127.0.0.1:${m.ready.port as number}`;

  const startManagerProc = async (name: string) => {
    const m = await spawnKiln(
      [
        "manager",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        join(dir, name),
        "--database-url",
        db.url,
        "--redis-url",
        redis.url,
        "--redis-prefix",
        redis.prefix,
        // A short claim: a killed replica's jobs move on after seconds, not half a minute.
        "--job-lock-ms",
        "5000",
        "--job-concurrency",
        "8",
        "--job-poll-ms",
        "100",
        "--keepalive-ms",
        "500",
      ],
      { env: { KILN_ROOT_PASSWORD: ROOT_PASSWORD, KILN_SECRET_KEY: secretKey }, timeoutMs: 60_000 },
    );
    managers.push(m);
    // The scheduler is announced at the counting proxy's address, so every dispatch passes through it;
    // to every replica (the same member row), so that it stays active whichever replica is stopped.
    const registration = { hostname: "scheduler-1", ip: "127.0.0.1", port: proxy.port };
    keepAlives.push(startManagerKeepAlive({ managerUrl: urlOf(m), kind: "scheduler", registration, intervalMs: 500 }));
    return m;
  };

  const setRateLimit = async (jobRateLimit: number) => {
    const r = await api(`${urlOf(b)}/oapi/v1/clusters/${clusterId}`, { method: "PATCH", token, body: { config: { job_rate_limit: jobRateLimit } } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  };

  before(async () => {
    const database = await createTestDatabase("mariadb");
    if ("skip" in database) {
      skip = database.skip;
      return;
    }
    db = database;
    const r = await createTestRedis();
    if ("skip" in r) {
      skip = r.skip;
      return;
    }
    redis = r;
    dir = await mkdtemp(join(tmpdir(), "kiln-replicas-"));
    origin = await startOrigin();
    for (let i = 0; i < JOBS; i++) origin.add(`/files/${i}.bin`, makeFile(FILE_BYTES));
    cluster = await TestCluster.start();
    await cluster.addPeer("seed-1", { seed: true });
    proxy = await startCountingProxy(cluster.schedulerUrl);
    // Both replicas at once on a fresh database: migrations and the first root user must not collide.
    [a, b] = await Promise.all([startManagerProc("a"), startManagerProc("b")]);
    assert.equal(a.ready.queue, "redis");
    token = (await createToken(urlOf(a), ["job", "cluster"])).token;
    const c = await until("an active scheduler in cluster-1", async () => {
      const list = await api(`${urlOf(a)}/oapi/v1/clusters`, { token });
      return list.json?.find?.((x: any) => x.name === "cluster-1" && x.schedulers.some((s: any) => s.state === "active"));
    });
    clusterId = c.id;
  });

  after(async () => {
    await Promise.all(keepAlives.map((k) => k.stop()));
    await Promise.all(managers.map((m) => m.kill()));
    await cluster?.stop();
    await proxy?.close();
    await origin?.close();
    await redis?.cleanup();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`${JOBS} jobs submitted across both managers each run exactly once`, async (t) => {
    if (skip) return t.skip(skip);
    await setRateLimit(100_000);
    const submitted: { id: number; url: string }[] = [];
    for (let i = 0; i < JOBS; i++) {
      const url = `${origin.url}/files/${i}.bin`;
      const r = await api(`${urlOf(i % 2 ? b : a)}/oapi/v1/jobs`, { token, body: { type: "preheat", args: { type: "file", url } } });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      submitted.push({ id: r.json.id, url });
    }
    for (const { id } of submitted) {
      const job = await waitForJob(urlOf(id % 2 ? a : b), token, id);
      assert.equal(job.state, "SUCCESS", JSON.stringify(job.result));
      assert.equal(job.result.success_tasks.length, 1);
    }
    const onA = runsOn(a);
    const onB = runsOn(b);
    for (const { id, url } of submitted) {
      assert.equal(count(onA, id) + count(onB, id), 1, `job ${id} ran ${count(onA, id)} time(s) on a and ${count(onB, id)} on b`);
      assert.equal(proxy.preheats(url), 1, `job ${id} was dispatched to the scheduler ${proxy.preheats(url)} times`);
      assert.equal(origin.sent.get(new URL(url).pathname), FILE_BYTES, `${url} fetched from the origin once`);
    }
    assert.ok(onA.length > 0 && onB.length > 0, `both replicas ran jobs (a: ${onA.length}, b: ${onB.length})`);
    const rows = await api(`${urlOf(a)}/oapi/v1/jobs?per_page=100&state=SUCCESS`, { token });
    assert.deepEqual(
      rows.json.map((j: any) => j.id).sort((x: number, y: number) => x - y),
      submitted.map((s) => s.id).sort((x, y) => x - y),
    );
  });

  it("a job deleted through one manager stops on the manager that runs it", async (t) => {
    if (skip) return t.skip(skip);
    const gated = await startGatedOrigin();
    t.after(() => gated.close());
    const r = await api(`${urlOf(a)}/oapi/v1/jobs`, { token, body: { type: "preheat", args: { type: "file", url: `${gated.url}/deleted.bin` } } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const id: number = r.json.id;
    const runner = await until("the job to start", () => [a, b].find((m) => runsOn(m).includes(id)));
    const other = runner === a ? b : a;
    const del = await api(`${urlOf(other)}/oapi/v1/jobs/${id}`, { method: "DELETE", token });
    assert.equal(del.status, 200, JSON.stringify(del.json));
    const stopped = await until("the running manager to stop the job", () => runner.lines.find((l) => l.includes('"job_stopped"') && JSON.parse(l).job === id));
    assert.equal(JSON.parse(stopped).reason, "job deleted");
    assert.equal((await api(`${urlOf(runner)}/oapi/v1/jobs/${id}`, { token })).status, 404);
  });

  it("a manager that starts while jobs run elsewhere does not run them again", async (t) => {
    if (skip) return t.skip(skip);
    const gated = await startGatedOrigin();
    t.after(() => gated.close());
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const body = { type: "preheat", args: { type: "file", url: `${gated.url}/late-${i}.bin` } };
      const r = await api(`${urlOf(i % 2 ? b : a)}/oapi/v1/jobs`, { token, body });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      ids.push(r.json.id);
    }
    await until("every job to start", () => ids.every((id) => runsOn(a).includes(id) || runsOn(b).includes(id)));
    const c = await startManagerProc("c");
    t.after(() => c.kill());
    // Its start-up recovery enqueued every pending job again…
    const recovered = await until("c's recovery", () => c.lines.find((l) => l.includes('"jobs_recovered"')));
    assert.ok(JSON.parse(recovered).resumed >= ids.length, recovered);
    gated.open();
    for (const id of ids) assert.equal((await waitForJob(urlOf(c), token, id)).state, "SUCCESS");
    // …and none of them ran twice.
    for (const id of ids) {
      assert.equal(count(runsOn(c), id), 0, `job ${id} ran again on the new manager`);
      assert.equal(count(runsOn(a), id) + count(runsOn(b), id), 1);
      assert.equal(proxy.preheats(`${gated.url}/late-${ids.indexOf(id)}.bin`), 1);
    }
    await c.kill();
  });

  it("the job rate limit of a cluster counts jobs on both managers", async (t) => {
    if (skip) return t.skip(skip);
    await setRateLimit(1);
    t.after(() => setRateLimit(100_000));
    const body = { type: "preheat", args: { type: "file", url: `${origin.url}/files/0.bin` } };
    const first = await api(`${urlOf(a)}/oapi/v1/jobs`, { token, body });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    // One job per second for the cluster: the other replica has no token left either.
    const second = await api(`${urlOf(b)}/oapi/v1/jobs`, { token, body });
    assert.equal(second.status, 429, JSON.stringify(second.json));
    assert.match(second.json.message, /job rate limit reached for scheduler cluster cluster-1 \(1 jobs\/s\)/);
    assert.equal(second.headers.get("retry-after"), "1");
    await waitForJob(urlOf(a), token, first.json.id);
  });

  it("the sign-in limit counts failures on both managers", async (t) => {
    if (skip) return t.skip(skip);
    const name = `guesser-${randomBytes(3).toString("hex")}`;
    const signIn = (m: KilnProcess, password: string) => api(`${urlOf(m)}/api/v1/users/signin`, { body: { name, password } });
    // Five failures, three on one replica and two on the other: each alone is under the limit.
    for (const m of [a, b, a, b, a]) assert.equal((await signIn(m, "wrong")).status, 401);
    for (const m of [a, b]) {
      const r = await signIn(m, "wrong");
      assert.equal(r.status, 429, JSON.stringify(r.json));
      assert.match(r.json.message, /too many failed sign-ins/);
    }
    // Another name from the same address is not affected.
    assert.equal((await api(`${urlOf(b)}/api/v1/users/signin`, { body: { name: "root", password: ROOT_PASSWORD } })).status, 200);
  });

  it("a manager stopped with SIGTERM hands its running job back at once: the other resumes it, no stalled-job wait", async (t) => {
    if (skip) return t.skip(skip);
    const gated = await startGatedOrigin();
    t.after(() => gated.close());
    const url = `${gated.url}/handed-back.bin`;
    const r = await api(`${urlOf(a)}/oapi/v1/jobs`, { token, body: { type: "preheat", args: { type: "file", url } } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const id: number = r.json.id;
    await until("the job dispatched", () => proxy.preheats(url) === 1);
    const stopping = [a, b].find((m) => runsOn(m).includes(id))!;
    const staying = stopping === a ? b : a;
    await stopping.kill("SIGTERM");
    assert.ok(stopping.lines.some((l) => l.includes('"job_stopped"') && JSON.parse(l).job === id && JSON.parse(l).reason === "shutdown"));
    await until("the other manager to resume the job", () => runsOn(staying).includes(id));
    gated.open();
    assert.equal((await waitForJob(urlOf(staying), token, id)).state, "SUCCESS");
    const stalled = staying.lines.filter((l) => l.includes('"job_stalled"') && JSON.parse(l).job === id);
    assert.deepEqual(stalled, [], "the job came back through the queue, not through the stalled-job check");
    // The stopped replica comes back for the tests that follow.
    const again = await startManagerProc(stopping === a ? "a2" : "b2");
    if (stopping === a) a = again;
    else b = again;
  });

  it("a manager killed mid-run (SIGKILL): its jobs finish on the other, each run once more only there", async (t) => {
    if (skip) return t.skip(skip);
    const gated = await startGatedOrigin();
    t.after(() => gated.close());
    const jobs: { id: number; url: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const url = `${gated.url}/killed-${i}.bin`;
      const r = await api(`${urlOf(i % 2 ? b : a)}/oapi/v1/jobs`, { token, body: { type: "preheat", args: { type: "file", url } } });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      jobs.push({ id: r.json.id, url });
    }
    // Every job running (fewer than one manager's concurrency) and dispatched, the origin still holding the answers.
    await until("every job dispatched", () => jobs.every((j) => proxy.preheats(j.url) === 1 && (runsOn(a).includes(j.id) || runsOn(b).includes(j.id))));
    // The replica running the most of them is killed (BullMQ's workers compete: one may have taken all six).
    const [victim, survivor] = runsOnJobs(a, jobs) >= runsOnJobs(b, jobs) ? [a, b] : [b, a];
    // …with its progress saved (what a resumed run continues from).
    await until("every job's progress saved", async () => {
      const states = await Promise.all(jobs.map((j) => api(`${urlOf(survivor)}/oapi/v1/jobs/${j.id}`, { token })));
      return states.every((s) => s.json.result?.progress.total === 1);
    });
    await victim.kill("SIGKILL");
    const onVictim = jobs.filter((j) => runsOn(victim).includes(j.id));
    assert.ok(onVictim.length > 0, "the killed manager was running some of the jobs");
    // The other replica takes them over while they are still in progress…
    await until("the survivor to resume the killed manager's jobs", () => onVictim.every((j) => runsOn(survivor).includes(j.id)));
    gated.open();
    for (const j of jobs) {
      const job = await waitForJob(urlOf(survivor), token, j.id);
      assert.equal(job.state, "SUCCESS", JSON.stringify(job.result));
      const wasOnVictim = onVictim.includes(j);
      assert.equal(count(runsOn(survivor), j.id), 1, `job ${j.id} ran once on the survivor`);
      assert.equal(count(runsOn(victim), j.id), wasOnVictim ? 1 : 0);
      assert.equal(proxy.preheats(j.url), wasOnVictim ? 2 : 1, `job ${j.id} dispatched once per run`);
      if (wasOnVictim)
        assert.ok(
          job.result.log.some((l: string) => /resumed after a manager restart/.test(l)),
          job.result.log.join("\n"),
        );
      // The swarm fetched each file from the origin once, whatever the managers did.
      assert.equal(gated.hits(new URL(j.url).pathname), 1);
    }
  });

  it("a Redis that cannot be reached stops the manager at start with one line, its password masked", async (t) => {
    if (skip) return t.skip(skip);
    const closed = await freePort();
    const r = await runKiln(
      ["manager", "--host", "127.0.0.1", "--port", "0", "--data-dir", join(dir, "no-redis"), "--redis-url", `redis://:hunter2@127.0.0.1:${closed}`],
      { env: { KILN_ROOT_PASSWORD: ROOT_PASSWORD }, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim(), `kiln manager: cannot reach Redis at redis://:***@127.0.0.1:${closed}: connection refused (ECONNREFUSED)`);
  });
});
