/**
 * The manager's Open API and console API against a real manager on loopback, the
 * same suite on SQLite, MariaDB and PostgreSQL (a fresh database each run).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { connect } from "node:net";
import { DB_KINDS, createTestDatabase, type TestDatabase } from "../helpers/manager-db.js";
import { api, createToken, startTestManager, waitForJob, ROOT_PASSWORD } from "../helpers/manager.js";
import type { RunningManager } from "../../src/manager/index.js";
import { ConsoleClient, startManagerKeepAlive } from "../../src/api/manager-client.js";
import { freePort } from "../helpers/registry.js";

/** An address where nothing listens: connections are refused at once. */
const CLOSED = `http://127.0.0.1:${await freePort()}`;

/** Seed 001's image request body, verbatim but for the registry host. */
const SEED_IMAGE_BODY = `{
    "type": "preheat",
    "args": {
        "type": "image",
        "url": "${CLOSED}/v2/library/alpine/manifests/3.19",
        "filteredQueryParams": "Expires&Signature",
        "username": "your_registry_username",
        "password": "your_registry_password"
    }
}`;

/** Seed 001's file request body, verbatim (trailing comma included) but for the URL. */
const SEED_FILE_BODY = `{
    "type": "preheat",
    "args": {
        "type": "file",
        "url": "${CLOSED}/file.bin",
    }
}`;

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** Seed 001's response, with the request URL: every field must be there with these values. */
function seedArgs(type: "image" | "file", url: string) {
  return {
    filteredQueryParams: "Expires&Signature",
    headers: null,
    password: "",
    pieceLength: 4194304,
    platform: "",
    tag: "",
    type,
    url,
    username: "",
  };
}

function assertSeedShape(job: any, type: "image" | "file", url: string) {
  for (const key of ["id", "created_at", "updated_at", "task_id", "type", "state", "args", "scheduler_clusters"]) {
    assert.ok(key in job, `response has ${key}`);
  }
  assert.equal(typeof job.id, "number");
  assert.match(job.created_at, TIME);
  assert.match(job.updated_at, TIME);
  assert.match(job.task_id, /^group_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(job.type, "preheat");
  assert.deepEqual(job.args, seedArgs(type, url));
  assert.deepEqual(Object.keys(job.args), Object.keys(seedArgs(type, url)), "args keys in the seed's order");
  assert.equal(job.scheduler_clusters.length, 1);
  const [c] = job.scheduler_clusters;
  assert.deepEqual(Object.keys(c), ["id", "created_at", "updated_at", "name"]);
  assert.equal(c.name, "cluster-1");
  assert.match(c.created_at, TIME);
}

/** POST with two Authorization headers, byte for byte as curl sends the Open API documentation's file example. */
function postWithTwoAuthHeaders(url: string, first: string, second: string, body: string): Promise<{ status: number; json: any }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    // write, not end: like curl, keep our half open until the server answers and closes.
    const socket = connect(Number(u.port), u.hostname, () => {
      socket.write(
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n` +
          `Content-Type: application/json\r\nAuthorization: ${first}\r\nAuthorization: ${second}\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    let raw = "";
    socket.on("data", (d) => (raw += d));
    socket.on("error", reject);
    socket.on("end", () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(raw)?.[1]);
      const [, payload = ""] = raw.split("\r\n\r\n");
      resolve({ status, json: JSON.parse(payload) });
    });
  });
}

for (const kind of DB_KINDS) {
  describe(`manager API on ${kind}`, () => {
    let database: TestDatabase | undefined;
    let skip: string | undefined;
    let m: RunningManager;
    let jobToken: string;
    let clusterToken: string;
    let bothToken: string;
    let jobs: string;

    before(async () => {
      const db = await createTestDatabase(kind);
      if ("skip" in db) {
        skip = db.skip;
        return;
      }
      database = db;
      m = await startTestManager(db.url);
      jobs = `${m.url}/oapi/v1/jobs`;
      jobToken = (await createToken(m.url, ["job"])).token;
      clusterToken = (await createToken(m.url, ["cluster"])).token;
      bothToken = (await createToken(m.url, ["job", "cluster"])).token;
    });

    after(async () => {
      await m?.close();
      await database?.drop();
    });

    it("creates cluster-1 at first start", async (t) => {
      if (skip) return t.skip(skip);
      const r = await api(`${m.url}/oapi/v1/clusters`, { token: clusterToken });
      assert.equal(r.status, 200);
      assert.equal(r.json.length, 1);
      assert.equal(r.json[0].name, "cluster-1");
      assert.equal(r.json[0].is_default, true);
    });

    it("answers the documented image request with the documented fields and hides the credentials", async (t) => {
      if (skip) return t.skip(skip);
      const r = await api(jobs, { token: jobToken, raw: SEED_IMAGE_BODY });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assertSeedShape(r.json, "image", `${CLOSED}/v2/library/alpine/manifests/3.19`);
      assert.equal(r.json.state, "PENDING");
      assert.ok(!JSON.stringify(r.json).includes("your_registry_password"));
      assert.ok(!JSON.stringify(r.json).includes("your_registry_username"));
      // The registry is unreachable: the job ends FAILURE with a log naming the cause.
      const done = await waitForJob(m.url, jobToken, r.json.id);
      assert.equal(done.state, "FAILURE");
      assertSeedShape(done, "image", `${CLOSED}/v2/library/alpine/manifests/3.19`);
      assert.match(done.result.error, /unreachable: connection refused/);
      assert.ok(
        done.result.log.some((l: string) => /cannot resolve image .*connection refused/.test(l)),
        done.result.log.join("\n"),
      );
      assert.equal(done.result.failure_tasks[0].url, `${CLOSED}/v2/library/alpine/manifests/3.19`);
    });

    it("accepts the documented file request: trailing comma, two Authorization headers (the first counts)", async (t) => {
      if (skip) return t.skip(skip);
      const r = await postWithTwoAuthHeaders(jobs, `Bearer ${jobToken}`, "token your_example.com_personal_access_token", SEED_FILE_BODY);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assertSeedShape(r.json, "file", `${CLOSED}/file.bin`);
      const got = await api(`${jobs}/${r.json.id}`, { token: jobToken });
      assert.equal(got.status, 200);
      assert.equal(got.json.task_id, r.json.task_id);
      // No scheduler registered in cluster-1: FAILURE that says so.
      const done = await waitForJob(m.url, jobToken, r.json.id);
      assert.equal(done.state, "FAILURE");
      assert.match(done.result.error, /cluster cluster-1 has no active scheduler/);
    });

    it("refuses missing, malformed, unknown, inactive, expired and wrongly scoped tokens as Dragonfly does", async (t) => {
      if (skip) return t.skip(skip);
      const body = JSON.parse(SEED_FILE_BODY.replace(",\n    }", "\n    }"));
      assert.deepEqual((await api(jobs, { body })).json, { message: "Unauthorized" });
      assert.equal((await api(jobs, { body })).status, 401);
      assert.equal((await api(jobs, { body, headers: { authorization: "Basic cm9vdDpyb290" } })).status, 401);
      assert.equal((await api(jobs, { body, headers: { authorization: "Bearer" } })).status, 401);
      assert.deepEqual((await api(jobs, { body, token: "kiln_pat_unknown" })).json, { message: "Unauthorized" });
      // ?access_token= works like the header.
      assert.equal((await api(`${jobs}?access_token=${jobToken}`)).status, 200);
      assert.equal((await api(`${jobs}?access_token=nope`)).status, 401);

      const { token, id, console } = await createToken(m.url, ["job"], { name: "to-revoke" });
      assert.equal((await api(jobs, { token })).status, 200);
      await console.updateToken(id, { state: "inactive" });
      const inactive = await api(jobs, { token });
      assert.equal(inactive.status, 403);
      assert.deepEqual(inactive.json, { message: "Token is inactive" });

      const soon = await createToken(m.url, ["job"], { name: "to-expire" });
      await soon.console.updateToken(soon.id, { expired_at: "2000-01-01T00:00:00Z" });
      const expired = await api(jobs, { token: soon.token });
      assert.equal(expired.status, 403);
      assert.deepEqual(expired.json, { message: "Token has expired" });

      const wrongScope = await api(jobs, { token: clusterToken });
      assert.equal(wrongScope.status, 403);
      assert.match(wrongScope.json.message, /"job" scope/);
      const wrongScope2 = await api(`${m.url}/oapi/v1/clusters`, { token: jobToken });
      assert.equal(wrongScope2.status, 403);
      assert.match(wrongScope2.json.message, /"cluster" scope/);
    });

    it("stores tokens hashed and shows a token only once", async (t) => {
      if (skip) return t.skip(skip);
      const { token, id, console } = await createToken(m.url, ["job"], { name: "shown-once" });
      const listed = await console.listTokens();
      const mine = listed.find((x) => x.id === id)!;
      assert.equal(mine.token, undefined);
      assert.deepEqual(mine.scopes, ["job"]);
      const row = await m.store.db.selectFrom("personal_access_tokens").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
      assert.notEqual(row.token_hash, token);
      assert.ok(!JSON.stringify(row).includes(token));
      const user = await m.store.db.selectFrom("users").selectAll().where("name", "=", "root").executeTakeFirstOrThrow();
      assert.ok(!user.password_hash.includes(ROOT_PASSWORD));
      assert.match(user.password_hash, /^scrypt\$/);
    });

    it("accepts Dragonfly's snake_case spellings and fills defaults only where absent", async (t) => {
      if (skip) return t.skip(skip);
      const r = await api(jobs, {
        token: jobToken,
        body: {
          type: "preheat",
          args: {
            type: "file",
            url: `${CLOSED}/a?Expires=1&x=2`,
            filtered_query_params: "Expires",
            piece_length: 8388608,
            tag: "t1",
            application: "app",
            scope: "all_seed_peers",
            ips: ["127.0.0.1"],
            count: 2,
            timeout: "30m",
            headers: { "X-Test": "1" },
          },
        },
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.args.filteredQueryParams, "Expires");
      assert.equal(r.json.args.pieceLength, 8388608);
      assert.equal(r.json.args.scope, "all_seed_peers");
      assert.equal(r.json.args.timeout, 1800);
      assert.deepEqual(r.json.args.headers, { "X-Test": "1" });
      assert.equal(r.json.args.tag, "t1");
      assert.equal(r.json.args.application, "app");
      assert.ok(!("filtered_query_params" in r.json.args));
      assert.deepEqual(Object.keys(r.json.args), [...Object.keys(r.json.args)].sort());
    });

    it("answers 422 naming the field for bodies that fail validation, 400 for malformed JSON", async (t) => {
      if (skip) return t.skip(skip);
      const cases: [unknown, RegExp][] = [
        [{ type: "preheat", args: { type: "file" } }, /args\.url/],
        [{ type: "preheat", args: { type: "file", url: "ftp://x/y" } }, /args\.url/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", pieceLength: 1024 } }, /args\.pieceLength/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", piece_length: 2 ** 31 } }, /args\.piece_length/],
        [{ type: "preheat", args: { type: "video", url: "http://x/y" } }, /args\.type/],
        [{ type: "preheat", args: { type: "image", url: "http://x/y" } }, /args\.url: an image URL must look like/],
        [
          { type: "garbage_collect", args: { type: "file", url: "http://x/y" } },
          /^type: must be one of "preheat", "get_task", "delete_task", "get_image_distribution", "sync_peers"/,
        ],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", scope: "everyone" } }, /args\.scope/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", ips: ["not-an-ip"] } }, /args\.ips\.0/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", platform: "linux" } }, /args\.platform/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y" }, scheduler_cluster_ids: [999] }, /scheduler_cluster_ids: unknown scheduler cluster 999/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y" }, scheduler_cluster_ids: "1" }, /scheduler_cluster_ids/],
        [[1, 2], /body/],
        // A URL with CR/LF would be cleaned silently by the URL parser, and then fetch something else.
        [{ type: "preheat", args: { type: "file", url: "http://x/y\r\nHost: evil" } }, /args\.url: must not contain spaces or control characters/],
        [{ type: "preheat", args: { type: "file", url: "http://x/a\tb" } }, /args\.url: must not contain spaces or control characters/],
        // Each wrong value says what is wrong with it, not a blanket "must be a number".
        [
          { type: "preheat", args: { type: "file", url: "http://x/y", concurrent_peer_count: -5 } },
          /args\.concurrent_peer_count: must be an integer from 1 to 10000/,
        ],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", count: 1.5 } }, /args\.count: must be an integer from 1 to 100000/],
        [{ type: "preheat", args: { type: "file", url: "http://x/y", percentage: "ten" } }, /args\.percentage: must be a number/],
        [
          { type: "preheat", args: { type: "file", url: "http://x/y", filteredQueryParams: "a".repeat(2000) } },
          /args\.filteredQueryParams: must be at most 1024 characters/,
        ],
      ];
      for (const [body, field] of cases) {
        const r = await api(jobs, { token: jobToken, body });
        assert.equal(r.status, 422, `${JSON.stringify(body)} → ${r.status} ${JSON.stringify(r.json)}`);
        assert.match(r.json.message, field, JSON.stringify(body));
      }
      const malformed = await api(jobs, { token: jobToken, raw: '{"type": "preheat", "args": {' });
      assert.equal(malformed.status, 400);
      assert.match(malformed.json.message, /not valid JSON/);
      const gzipped = await fetch(jobs, {
        method: "POST",
        headers: { authorization: `Bearer ${jobToken}`, "content-type": "application/json", "content-encoding": "gzip" },
        body: gzipSync(JSON.stringify({ type: "preheat", args: { type: "file", url: "http://x/y" } })),
      });
      assert.equal(gzipped.status, 400);
      const gzMessage = ((await gzipped.json()) as { message: string }).message;
      assert.match(gzMessage, /^request body is not valid JSON: the body is binary \(\d+ bytes\), not JSON text; send it uncompressed as application\/json$/);
      const perPage = await api(`${jobs}?per_page=-1`, { token: jobToken });
      assert.equal(perPage.status, 400);
      assert.match(perPage.json.message, /per_page: must be an integer from 1 to 100/);
      const proto = await api(jobs, { token: jobToken, raw: '{"type":"preheat","args":{"type":"file","url":"http://x/y","headers":{"__proto__":{"a":"b"}}}}' });
      assert.equal(proto.status, 400);
    });

    it("gets, lists with paging and Link headers, filters, patches and deletes jobs; 404 for unknown ones", async (t) => {
      if (skip) return t.skip(skip);
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await api(jobs, { token: jobToken, body: { type: "preheat", args: { type: "file", url: `${CLOSED}/list-${i}` } } });
        assert.equal(r.status, 200);
        ids.push(r.json.id);
      }
      for (const id of ids) await waitForJob(m.url, jobToken, id);
      const page1 = await api(`${jobs}?page=1&per_page=2`, { token: jobToken });
      assert.equal(page1.status, 200);
      assert.equal(page1.json.length, 2);
      assert.equal(page1.json[0].id, ids[2], "newest first");
      const link = page1.headers.get("link")!;
      assert.match(link, /<\/oapi\/v1\/jobs\?page=2&per_page=2>;rel=next/);
      assert.match(link, /rel=first/);
      assert.match(link, /rel=last/);
      const total = Number(page1.headers.get("x-total-count"));
      assert.ok(total >= 3);
      const page2 = await api(`${jobs}?page=2&per_page=2`, { token: jobToken });
      assert.notEqual(page2.json[0].id, page1.json[0].id);
      const failed = await api(`${jobs}?state=FAILURE&type=preheat&per_page=100`, { token: jobToken });
      assert.ok(failed.json.length >= 3 && failed.json.every((j: any) => j.state === "FAILURE"));
      const none = await api(`${jobs}?state=SUCCESS`, { token: jobToken });
      assert.deepEqual(none.json, []);
      assert.equal((await api(`${jobs}?state=DONE`, { token: jobToken })).status, 400);
      assert.equal((await api(`${jobs}?per_page=0`, { token: jobToken })).status, 400);

      const patched = await api(`${jobs}/${ids[0]}`, { method: "PATCH", token: jobToken, body: { bio: "warm the cache" } });
      assert.equal(patched.status, 200);
      assert.equal(patched.json.bio, "warm the cache");
      assert.equal((await api(`${jobs}/${ids[0]}`, { method: "DELETE", token: jobToken })).status, 200);
      const gone = await api(`${jobs}/${ids[0]}`, { token: jobToken });
      assert.equal(gone.status, 404);
      assert.match(gone.json.message, /job \d+ not found/);
      assert.equal((await api(`${jobs}/999999`, { token: jobToken })).status, 404);
      assert.equal((await api(`${jobs}/999999`, { method: "DELETE", token: jobToken })).status, 404);
      assert.equal((await api(`${jobs}/abc`, { token: jobToken })).status, 400);
    });

    it("answers 429 when a cluster's job rate limit is hit", async (t) => {
      if (skip) return t.skip(skip);
      const c = await api(`${m.url}/oapi/v1/clusters`, { token: clusterToken, body: { name: "slow", config: { job_rate_limit: 1 } } });
      assert.equal(c.status, 200, JSON.stringify(c.json));
      const body = { type: "preheat", args: { type: "file", url: `${CLOSED}/limited` }, scheduler_cluster_ids: [c.json.id] };
      const answers = await Promise.all(Array.from({ length: 5 }, () => api(jobs, { token: jobToken, body })));
      const statuses = answers.map((a) => a.status);
      assert.ok(statuses.includes(200), statuses.join());
      const limited = answers.find((a) => a.status === 429);
      assert.ok(limited, statuses.join());
      assert.match(limited.json.message, /rate limit.*slow/);
      assert.ok(Number(limited.headers.get("retry-after")) >= 1);
      const ok = answers.find((a) => a.status === 200)!;
      assert.deepEqual(
        ok.json.scheduler_clusters.map((x: any) => x.name),
        ["slow"],
      );
      // Jobs without scheduler_cluster_ids go to every cluster.
      const all = await api(jobs, { token: jobToken, body: { type: "preheat", args: { type: "file", url: `${CLOSED}/all` } } });
      if (all.status === 200) assert.deepEqual(all.json.scheduler_clusters.map((x: any) => x.name).sort(), ["cluster-1", "slow"]);
      else assert.equal(all.status, 429);
    });

    it("keeps schedulers and seed peers in the cluster's records while they keep alive", async (t) => {
      if (skip) return t.skip(skip);
      const sched = startManagerKeepAlive({
        managerUrl: m.url,
        kind: "scheduler",
        registration: { hostname: "sched-a", ip: "127.0.0.1", port: 8002 },
        intervalMs: 200,
      });
      const seed = startManagerKeepAlive({
        managerUrl: m.url,
        kind: "seed_peer",
        registration: { hostname: "seed-a", ip: "127.0.0.1", port: 4010 },
        intervalMs: 200,
      });
      await Promise.all([sched.registered, seed.registered]);
      const c1 = async () => (await api(`${m.url}/oapi/v1/clusters`, { token: bothToken })).json.find((c: any) => c.name === "cluster-1");
      let c = await c1();
      assert.equal(c.schedulers.length, 1);
      assert.equal(c.schedulers[0].url, "http://127.0.0.1:8002");
      assert.equal(c.schedulers[0].state, "active");
      assert.equal(c.seed_peers[0].hostname, "seed-a");
      // Both keep alive after registering (seed peers pass no cluster-config hook: the keepalive must still be sent).
      const registeredAt = Date.parse(c.seed_peers[0].created_at);
      const deadline = Date.now() + 10_000;
      while (Date.parse(c.seed_peers[0].last_keepalive_at) <= registeredAt || Date.parse(c.schedulers[0].last_keepalive_at) <= registeredAt) {
        assert.ok(Date.now() < deadline, `no keepalive after registration: ${JSON.stringify(c)}`);
        await new Promise((r) => setTimeout(r, 200));
        c = await c1();
      }
      await Promise.all([sched.stop(), seed.stop()]);
      c = await c1();
      assert.equal(c.schedulers.length, 0);
      assert.equal(c.seed_peers.length, 0);
      const unknown = await api(`${m.url}/api/v1/schedulers/424242/keepalive`, { method: "POST" });
      assert.equal(unknown.status, 404);
      const badCluster = await api(`${m.url}/api/v1/schedulers`, { body: { hostname: "x", ip: "127.0.0.1", port: 1, scheduler_cluster_id: 4242 } });
      assert.equal(badCluster.status, 422);
    });

    it("keeps the hosts a scheduler reports in the peer inventory: big counters, label and state filters", async (t) => {
      if (skip) return t.skip(skip);
      const reg = await api(`${m.url}/api/v1/schedulers`, { body: { hostname: "sched-inv", ip: "127.0.0.1", port: 8102 } });
      assert.equal(reg.status, 200, JSON.stringify(reg.json));
      const TiB = 2 ** 40;
      const host = (id: string, labels: Record<string, string>, type: "normal" | "super" = "normal") => ({
        id,
        hostname: id,
        ip: "10.0.0.1",
        type,
        ports: { upload: 4001, proxy: 4002 },
        labels,
        idc: "",
        location: "",
        version: "0.1.0",
        stats: { tasks: 3, bytesStored: 5 * TiB, freeDiskBytes: 7 * TiB, uploadedBytes: 1, swarmBytes: 2, originBytes: 3 },
        createdAt: new Date().toISOString(),
        lastSeenAt: new Date().toISOString(),
      });
      const report = (hosts: unknown[]) => api(`${m.url}/api/v1/schedulers/${reg.json.id}/hosts`, { body: { hosts } });
      assert.equal((await report([host("inv-a", { zone: "a" }), host("inv-b", { zone: "b" }), host("inv-seed", {}, "super")])).status, 200);
      const list = async (q: string) => (await api(`${m.url}/oapi/v1/peers?${q}`, { token: clusterToken })).json.map((p: any) => p.hostname).sort();
      const all = await api(`${m.url}/oapi/v1/peers?q=inv-`, { token: clusterToken });
      assert.equal(all.status, 200, JSON.stringify(all.json));
      assert.equal(all.json.length, 3);
      const a = all.json.find((p: any) => p.hostname === "inv-a");
      assert.equal(a.bytes_stored, 5 * TiB, "bytes beyond 32 bits survive every database");
      assert.equal(a.free_disk_bytes, 7 * TiB);
      assert.equal(a.proxy_port, 4002);
      assert.equal(a.metrics_port, null);
      assert.deepEqual(a.labels, { zone: "a" });
      assert.deepEqual(await list("q=inv-&labels=zone=b"), ["inv-b"]);
      assert.deepEqual(await list("q=inv-&type=super"), ["inv-seed"]);
      // The next snapshot leaves inv-b out: it is inactive, the others stay active. inv-a got 1000 more bytes from the swarm.
      const grown = host("inv-a", { zone: "a" });
      grown.stats.swarmBytes += 1000;
      assert.equal((await report([grown, host("inv-seed", {}, "super")])).status, 200);
      const session = await api(`${m.url}/api/v1/users/signin`, { body: { name: "root", password: ROOT_PASSWORD } });
      const traffic = await api(`${m.url}/api/v1/traffic?minutes=60`, { token: session.json.token });
      assert.equal(traffic.status, 200, JSON.stringify(traffic.json));
      assert.equal(traffic.json.bucket_seconds, 60);
      // First report: 3 hosts × (2 swarm, 3 origin) counted whole; second: only what grew.
      assert.equal(traffic.json.swarm_bytes, 3 * 2 + 1000);
      assert.equal(traffic.json.origin_bytes, 3 * 3);
      assert.ok(traffic.json.points.length >= 60 && traffic.json.points.length <= 62, String(traffic.json.points.length));
      assert.equal(
        traffic.json.points.reduce((n: number, p: any) => n + p.swarm_bytes, 0),
        1006,
      );
      assert.equal((await api(`${m.url}/api/v1/traffic`)).status, 401);
      assert.deepEqual(await list("q=inv-&state=inactive"), ["inv-b"]);
      assert.deepEqual(await list("q=inv-&state=active"), ["inv-a", "inv-seed"]);
      const bad = await report([{ ...host("inv-c", {}), labels: { "bad key!": "x" } }]);
      assert.equal(bad.status, 422);
      assert.match(bad.json.message, /hosts\.0\.labels/);
      assert.equal((await api(`${m.url}/api/v1/schedulers/424242/hosts`, { body: { hosts: [] } })).status, 404);
      await api(`${m.url}/api/v1/schedulers/${reg.json.id}`, { method: "DELETE" });
    });

    it("serves an OpenAPI document for /oapi/v1", async (t) => {
      if (skip) return t.skip(skip);
      const r = await api(`${m.url}/oapi/v1/openapi.json`);
      assert.equal(r.status, 200);
      assert.match(r.json.openapi, /^3\./);
      assert.ok(r.json.paths["/oapi/v1/jobs"].post);
      assert.ok(r.json.paths["/oapi/v1/jobs/{id}"].get);
      assert.ok(r.json.paths["/oapi/v1/clusters"].get);
      assert.ok(r.json.paths["/oapi/v1/peers"].get, "the peer inventory");
      // Every job type, with its own args, is in the request body's schema.
      const body = JSON.stringify(r.json.paths["/oapi/v1/jobs"].post.requestBody);
      for (const type of ["preheat", "get_task", "delete_task", "get_image_distribution", "sync_peers"]) assert.ok(body.includes(`"${type}"`), type);
      assert.ok(body.includes("task_id") && body.includes("filtered_query_params"), "task job args are documented");
      assert.ok(!Object.keys(r.json.paths).some((p) => p.startsWith("/api/v1")));
    });
  });
}

describe("manager first start", () => {
  it("creates root with a generated password that must be changed before tokens can be made", async (t) => {
    const db = await createTestDatabase("sqlite");
    if ("skip" in db) return t.skip(db.skip);
    const lines: string[] = [];
    const m = await startTestManager(db.url, { rootPassword: undefined, announce: (l) => lines.push(l) });
    try {
      assert.equal(lines.length, 1);
      const password = /password (\S+) /.exec(lines[0]!)![1]!;
      const console = new ConsoleClient(m.url);
      await assert.rejects(console.signIn("root", "wrong"), /Unauthorized/);
      const s = await console.signIn("root", password);
      assert.equal(s.user.must_change_password, true);
      await assert.rejects(console.createToken({ name: "x", scopes: ["job"] }), /Password must be changed/);
      await console.resetPassword(s.user.id, password, "a-new-password");
      const t1 = await console.createToken({ name: "x", scopes: ["job"] });
      assert.match(t1.token!, /^kiln_pat_/);
      await assert.rejects(new ConsoleClient(m.url).signIn("root", password), /Unauthorized/);
    } finally {
      await m.close();
    }
    // A second start neither recreates root nor prints a password.
    const again: string[] = [];
    const m2 = await startTestManager(db.url, { rootPassword: undefined, announce: (l) => again.push(l) });
    await m2.close();
    assert.deepEqual(again, []);
    await db.drop();
  });
});

describe("membership with a cluster secret", () => {
  it("refuses schedulers and seed peers without the secret", async (t) => {
    const db = await createTestDatabase("sqlite");
    if ("skip" in db) return t.skip(db.skip);
    const m = await startTestManager(db.url, { clusterSecret: "s3cret" });
    try {
      const body = { hostname: "rogue", ip: "127.0.0.1", port: 9999 };
      assert.equal((await api(`${m.url}/api/v1/schedulers`, { body })).status, 401);
      assert.equal((await api(`${m.url}/api/v1/schedulers`, { body, headers: { "x-kiln-cluster-secret": "wrong" } })).status, 401);
      const ka = startManagerKeepAlive({ managerUrl: m.url, kind: "scheduler", registration: body, secret: "s3cret", intervalMs: 100 });
      await ka.registered;
      assert.ok(ka.id! > 0);
      await ka.stop();
    } finally {
      await m.close();
      await db.drop();
    }
  });
});

describe("sign-in guessing", () => {
  it("after 5 failed sign-ins for a name from one address, that pair gets 429 with Retry-After, even with the right password", async (t) => {
    const db = await createTestDatabase("sqlite");
    if ("skip" in db) return t.skip(db.skip);
    const m = await startTestManager(db.url);
    try {
      const signin = (name: string, password: string) => api(`${m.url}/api/v1/users/signin`, { body: { name, password } });
      for (let i = 0; i < 5; i++) assert.equal((await signin("root", `guess-${i}`)).status, 401, `guess ${i}`);
      const locked = await signin("root", ROOT_PASSWORD);
      assert.equal(locked.status, 429);
      assert.match(locked.json.message, /too many failed sign-ins for root from this address; try again in \d+ s/);
      const retry = Number(locked.headers.get("retry-after"));
      assert.ok(retry > 0 && retry <= 15 * 60, `Retry-After ${retry}`);
      // Other names from the same address are counted on their own.
      assert.equal((await signin("nobody", "x")).status, 401);
    } finally {
      await m.close();
      await db.drop();
    }
  });
});
