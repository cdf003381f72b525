/**
 * The console API (/api/v1) against a real manager on loopback, on SQLite, MariaDB
 * and PostgreSQL: Dragonfly's sign-in answer and `jwt` cookie, CSRF for cookie
 * writes, sign-out and expiry, paged lists with Link headers, users and their
 * roles (guests read only, also through their tokens), jobs with search and cancel,
 * schedulers and seed peers, and the OpenAPI document of all of it.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { DB_KINDS, createTestDatabase, type TestDatabase } from "../helpers/manager-db.js";
import { api, createToken, startTestManager, ROOT_PASSWORD } from "../helpers/manager.js";
import { asBrowser, cookieSignIn, cookieValue, type CookieSession } from "../helpers/console-session.js";
import type { RunningManager } from "../../src/manager/index.js";
import { startManagerKeepAlive, type ManagerKeepAlive } from "../../src/api/manager-client.js";
import { parseLinkPages } from "../../src/api/paging.js";
import { freePort } from "../helpers/registry.js";

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const CLOSED = `http://127.0.0.1:${await freePort()}`;

/** A "scheduler" that accepts connections and never answers: jobs sent to it stay PENDING. */
async function startSilentScheduler() {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((_req, res) => void held.push(res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

for (const kind of DB_KINDS) {
  describe(`console API on ${kind}`, () => {
    let database: TestDatabase | undefined;
    let skip: string | undefined;
    let m: RunningManager;
    let root: CookieSession;
    const v1 = (path: string) => `${m.url}/api/v1${path}`;

    before(async () => {
      const db = await createTestDatabase(kind);
      if ("skip" in db) {
        skip = db.skip;
        return;
      }
      database = db;
      m = await startTestManager(db.url, { consoleDir: false });
      root = await cookieSignIn(m.url, "root", ROOT_PASSWORD);
    });

    after(async () => {
      await m?.close();
      await database?.drop();
    });

    it("signs in with Dragonfly's answer and sets the jwt cookie HttpOnly and SameSite=Strict; Secure behind TLS", async (t) => {
      if (skip) return t.skip(skip);
      const r = await api(v1("/users/signin"), { body: { name: "root", password: ROOT_PASSWORD } });
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.json).sort(), ["expire", "token"]);
      assert.match(r.json.expire, TIME);
      const expire = Date.parse(r.json.expire);
      assert.ok(expire > Date.now() + 23 * 3600_000 && expire <= Date.now() + 24 * 3600_000 + 1000, r.json.expire);
      const cookies = r.headers.getSetCookie();
      const jwt = cookies.find((c) => c.startsWith("jwt="))!;
      assert.equal(cookieValue(cookies, "jwt"), r.json.token);
      assert.match(jwt, /; HttpOnly/i);
      assert.match(jwt, /; SameSite=Strict/i);
      assert.match(jwt, /; Path=\//);
      assert.doesNotMatch(jwt, /; Secure/i, "plain HTTP: a Secure cookie would never come back");
      const csrf = cookies.find((c) => c.startsWith("csrf_token="))!;
      assert.doesNotMatch(csrf, /HttpOnly/i, "the page must read it");
      assert.match(csrf, /; SameSite=Strict/i);

      const proxied = await api(v1("/users/signin"), { body: { name: "root", password: ROOT_PASSWORD }, headers: { "x-forwarded-proto": "https" } });
      for (const c of proxied.headers.getSetCookie()) assert.match(c, /; Secure/i, c);

      // The same token works as a cookie and as a Bearer header.
      const byCookie = await api(v1("/users/me"), { headers: { cookie: `jwt=${r.json.token}` } });
      assert.equal(byCookie.status, 200);
      assert.equal(byCookie.json.name, "root");
      assert.equal(byCookie.json.role, "root");
      const byBearer = await api(v1("/users/me"), { token: r.json.token });
      assert.equal(byBearer.json.id, byCookie.json.id);
      assert.equal((await api(v1("/users/me"))).status, 401);
      assert.equal((await api(v1("/users/me"), { headers: { cookie: "jwt=kiln_session_forged" } })).status, 401);
    });

    it("refuses cookie-authenticated writes without the CSRF header; Bearer writes need none", async (t) => {
      if (skip) return t.skip(skip);
      const body = { name: "csrf-test", scopes: ["job"] };
      const none = await asBrowser(root, v1("/personal-access-tokens"), { body, csrf: null });
      assert.equal(none.status, 403);
      assert.match(none.json.message, /x-csrf-token/);
      // Another session's token, or the cookie's value with a character changed, does not pass.
      const other = await cookieSignIn(m.url, "root", ROOT_PASSWORD);
      assert.equal((await asBrowser(root, v1("/personal-access-tokens"), { body, csrf: other.csrf })).status, 403);
      assert.equal((await asBrowser(root, v1("/personal-access-tokens"), { body, csrf: `${root.csrf.slice(0, -1)}x` })).status, 403);
      // A form post cannot set headers: text/plain JSON with the cookie is refused too.
      const form = await fetch(v1("/personal-access-tokens"), {
        method: "POST",
        headers: { cookie: root.cookie, "content-type": "text/plain" },
        body: JSON.stringify(body),
      });
      assert.equal(form.status, 403);
      const ok = await asBrowser(root, v1("/personal-access-tokens"), { body });
      assert.equal(ok.status, 200, JSON.stringify(ok.json));
      assert.match(ok.json.token, /^kiln_pat_/);
      const bearer = await api(v1("/personal-access-tokens"), { token: root.token, body });
      assert.equal(bearer.status, 200);
      // Reads need no CSRF header.
      assert.equal((await asBrowser(root, v1("/personal-access-tokens"))).status, 200);
    });

    it("signs out: the session ends and the cookies are cleared", async (t) => {
      if (skip) return t.skip(skip);
      const s = await cookieSignIn(m.url, "root", ROOT_PASSWORD);
      assert.equal((await asBrowser(s, v1("/users/me"))).status, 200);
      const out = await asBrowser(s, v1("/users/signout"), { method: "POST" });
      assert.equal(out.status, 200);
      const cleared = out.headers.getSetCookie();
      for (const name of ["jwt", "csrf_token"]) {
        const line = cleared.find((c) => c.startsWith(`${name}=`));
        assert.ok(line, `${name} cleared`);
        assert.match(line!, /Expires=Thu, 01 Jan 1970|Max-Age=0/, line);
      }
      assert.equal((await asBrowser(s, v1("/users/me"))).status, 401);
      assert.equal((await api(v1("/users/me"), { token: s.token })).status, 401);
      // Signing out without a session is harmless.
      assert.equal((await api(v1("/users/signout"), { method: "POST" })).status, 200);
    });

    it("creates users who must change their first password; guests read everything and write nothing", async (t) => {
      if (skip) return t.skip(skip);
      const created = await asBrowser(root, v1("/users"), { body: { name: "gina", email: "gina@example.com", password: "first-password" } });
      assert.equal(created.status, 200, JSON.stringify(created.json));
      assert.equal(created.json.role, "guest");
      assert.equal(created.json.must_change_password, true);
      assert.equal((await asBrowser(root, v1("/users"), { body: { name: "gina", password: "another-one" } })).status, 409);
      const bad = await asBrowser(root, v1("/users"), { body: { name: "a b", email: "not-mail", password: "short" } });
      assert.equal(bad.status, 422);
      assert.match(bad.json.message, /name: may contain only/);
      assert.match(bad.json.message, /email: must be an email address/);
      assert.match(bad.json.message, /password: must be at least 8 characters/);

      let gina = await cookieSignIn(m.url, "gina", "first-password");
      const blocked = await asBrowser(gina, v1("/clusters"));
      assert.equal(blocked.status, 403);
      assert.match(blocked.json.message, /Password must be changed first/);
      const id = created.json.id;
      const changed = await asBrowser(gina, v1(`/users/${id}/reset_password`), { body: { old_password: "first-password", new_password: "gina-own-password" } });
      assert.equal(changed.status, 200, JSON.stringify(changed.json));
      gina = await cookieSignIn(m.url, "gina", "gina-own-password");

      for (const path of ["/clusters", "/jobs", "/users", "/schedulers", "/seed-peers", "/personal-access-tokens", `/users/${id}/roles`]) {
        const r = await asBrowser(gina, v1(path));
        assert.equal(r.status, 200, `guest GET ${path}: ${r.status} ${JSON.stringify(r.json)}`);
      }
      assert.deepEqual((await asBrowser(gina, v1(`/users/${id}/roles`))).json, ["guest"]);
      const writes: [string, string, unknown][] = [
        ["POST", "/jobs", { type: "preheat", args: { type: "file", url: `${CLOSED}/x` } }],
        ["POST", "/clusters", { name: "guest-made" }],
        ["PATCH", "/clusters/1", { bio: "guest was here" }],
        ["POST", "/personal-access-tokens", { name: "g", scopes: ["job"] }],
        ["POST", "/users", { name: "mallory", password: "mallory-password" }],
        ["PUT", `/users/${id}/roles/root`, undefined],
        ["PATCH", `/users/${id}`, { email: "x@example.com" }],
        ["POST", "/jobs/1/cancel", undefined],
        ["DELETE", "/jobs/1", undefined],
      ];
      for (const [method, path, body] of writes) {
        const r = await asBrowser(gina, v1(path), { method, body });
        assert.equal(r.status, 403, `guest ${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
        assert.match(r.json.message, /guest users are read-only/);
      }
      // Bearer as well as cookie.
      assert.equal((await api(v1("/clusters"), { token: gina.token, body: { name: "guest-made" } })).status, 403);
    });

    it("gives and takes root; disables users; never leaves the last root; a demoted user's token may only read", async (t) => {
      if (skip) return t.skip(skip);
      const made = await asBrowser(root, v1("/users"), { body: { name: "ada", password: "ada-first-pass", role: "root" } });
      assert.equal(made.json.role, "root");
      const id = made.json.id;
      const ada = await cookieSignIn(m.url, "ada", "ada-first-pass");
      await asBrowser(ada, v1(`/users/${id}/reset_password`), { body: { old_password: "ada-first-pass", new_password: "ada-password-2" } });
      const adaToken = (
        await api(v1("/personal-access-tokens"), { token: (await cookieSignIn(m.url, "ada", "ada-password-2")).token, body: { name: "ada", scopes: ["job"] } })
      ).json.token;
      const jobBody = { type: "preheat", args: { type: "file", url: `${CLOSED}/by-ada` } };
      assert.equal((await api(`${m.url}/oapi/v1/jobs`, { token: adaToken, body: jobBody })).status, 200);

      const demoted = await asBrowser(root, v1(`/users/${id}/roles/root`), { method: "DELETE" });
      assert.equal(demoted.status, 200);
      assert.equal(demoted.json.role, "guest");
      assert.deepEqual((await asBrowser(root, v1(`/users/${id}/roles`))).json, ["guest"]);
      const refused = await api(`${m.url}/oapi/v1/jobs`, { token: adaToken, body: jobBody });
      assert.equal(refused.status, 403);
      assert.match(refused.json.message, /guest users are read-only/);
      assert.equal((await api(`${m.url}/oapi/v1/jobs`, { token: adaToken })).status, 200);
      const noGuest = await asBrowser(root, v1(`/users/${id}/roles/guest`), { method: "DELETE" });
      assert.equal(noGuest.status, 422);
      assert.equal((await asBrowser(root, v1(`/users/${id}/roles/admin`), { method: "PUT" })).status, 400);
      assert.equal((await asBrowser(root, v1(`/users/${id}/roles/root`), { method: "PUT" })).json.role, "root");

      // Disabled: sessions end, sign-in and tokens are refused.
      const adaSession = await cookieSignIn(m.url, "ada", "ada-password-2");
      const disabled = await asBrowser(root, v1(`/users/${id}`), { method: "PATCH", body: { state: "inactive" } });
      assert.equal(disabled.json.state, "inactive");
      assert.equal((await asBrowser(adaSession, v1("/users/me"))).status, 401);
      assert.equal((await api(v1("/users/signin"), { body: { name: "ada", password: "ada-password-2" } })).status, 403);
      assert.equal((await api(`${m.url}/oapi/v1/jobs`, { token: adaToken })).status, 403);
      await asBrowser(root, v1(`/users/${id}`), { method: "PATCH", body: { state: "active" } });

      // The last active root keeps root and stays enabled.
      await asBrowser(root, v1(`/users/${id}/roles/root`), { method: "DELETE" });
      const me = (await asBrowser(root, v1("/users/me"))).json;
      for (const [method, path, body] of [
        ["DELETE", `/users/${me.id}/roles/root`, undefined],
        ["PUT", `/users/${me.id}/roles/guest`, undefined],
        ["PATCH", `/users/${me.id}`, { state: "inactive" }],
      ] as const) {
        const r = await asBrowser(root, v1(path), { method, body });
        assert.equal(r.status, 409, `${method} ${path}`);
        assert.match(r.json.message, /last active root user/);
      }
      // Root sets a password for someone else: it is a first password again.
      const reset = await asBrowser(root, v1(`/users/${id}/reset_password`), { body: { old_password: "-", new_password: "ada-temporary-1" } });
      assert.equal(reset.json.must_change_password, true);
    });

    it("pages every list with page/per_page, a Link header and X-Total-Count", async (t) => {
      if (skip) return t.skip(skip);
      for (let i = 0; i < 3; i++) await asBrowser(root, v1("/users"), { body: { name: `pager-${i}`, password: "pager-password" } });
      for (let i = 0; i < 3; i++) await asBrowser(root, v1("/clusters"), { body: { name: `paged-${i}` } });
      for (let i = 0; i < 3; i++) await asBrowser(root, v1("/jobs"), { body: { type: "preheat", args: { type: "file", url: `${CLOSED}/paged-${i}` } } });
      for (const path of ["/users", "/clusters", "/personal-access-tokens", "/jobs"]) {
        const first = await asBrowser(root, v1(`${path}?per_page=2`));
        assert.equal(first.status, 200, path);
        assert.equal(first.json.length, 2, path);
        const total = Number(first.headers.get("x-total-count"));
        assert.ok(total >= 3, `${path} total ${total}`);
        const link = first.headers.get("link")!;
        assert.match(link, new RegExp(`<\\/api\\/v1${path}\\?per_page=2&page=2>;rel=next`), link);
        const pages = parseLinkPages(link);
        assert.deepEqual(pages, { prev: 1, next: 2, first: 1, last: Math.ceil(total / 2) }, `${path}: ${link}`);
        const last = await asBrowser(root, v1(`${path}?per_page=2&page=${pages.last}`));
        assert.equal(last.json.length, total - 2 * (pages.last! - 1), path);
        assert.ok(!last.json.some((x: { id: number }) => first.json.some((y: { id: number }) => y.id === x.id)), `${path}: pages overlap`);
      }
      const users = await asBrowser(root, v1("/users?name=PAGER&per_page=100"));
      assert.deepEqual(users.json.map((u: { name: string }) => u.name).sort(), ["pager-0", "pager-1", "pager-2"]);
      assert.equal((await asBrowser(root, v1("/users?per_page=101"))).status, 400);
      // The Open API keeps answering every cluster without page/per_page.
      const clusterToken = (await createToken(m.url, ["cluster"])).token;
      const all = await api(`${m.url}/oapi/v1/clusters`, { token: clusterToken });
      assert.ok(all.json.length >= 4);
    });

    it("creates jobs from the console, searches them by URL, cancels a pending one (409 once ended)", async (t) => {
      if (skip) return t.skip(skip);
      const silent = await startSilentScheduler();
      let sched: ManagerKeepAlive | undefined;
      try {
        const cluster = (await asBrowser(root, v1("/clusters"), { body: { name: "held" } })).json;
        sched = startManagerKeepAlive({
          managerUrl: m.url,
          kind: "scheduler",
          registration: { hostname: "silent", ip: "127.0.0.1", port: 1, url: silent.url, scheduler_cluster_id: cluster.id },
          intervalMs: 200,
        });
        await sched.registered;
        const url = `${CLOSED}/Search-Me/file.iso`;
        const created = await asBrowser(root, v1("/jobs"), { body: { type: "preheat", args: { type: "file", url }, scheduler_cluster_ids: [cluster.id] } });
        assert.equal(created.status, 200, JSON.stringify(created.json));
        assert.equal(created.json.state, "PENDING");
        const me = (await asBrowser(root, v1("/users/me"))).json;
        assert.equal(created.json.user_id, me.id);

        const found = await asBrowser(root, v1("/jobs?url=search-me&per_page=100"));
        assert.deepEqual(
          found.json.map((j: { id: number }) => j.id),
          [created.json.id],
        );
        assert.deepEqual((await asBrowser(root, v1("/jobs?url=100%25_not&per_page=100"))).json, [], "LIKE wildcards are taken literally");
        const pending = await asBrowser(root, v1(`/jobs?state=PENDING&user_id=${me.id}&per_page=100`));
        assert.ok(pending.json.some((j: { id: number }) => j.id === created.json.id));

        const canceled = await asBrowser(root, v1(`/jobs/${created.json.id}/cancel`), { method: "POST" });
        assert.equal(canceled.status, 200, JSON.stringify(canceled.json));
        assert.equal(canceled.json.state, "FAILURE");
        assert.equal(canceled.json.result.error, "canceled by root");
        assert.ok(canceled.json.result.log.some((l: string) => /canceled by root$/.test(l)));
        const again = await asBrowser(root, v1(`/jobs/${created.json.id}/cancel`), { method: "POST" });
        assert.equal(again.status, 409);
        assert.match(again.json.message, /already ended \(FAILURE\)/);
        // It stays canceled: the runner does not overwrite the outcome.
        await new Promise((r) => setTimeout(r, 500));
        assert.equal((await asBrowser(root, v1(`/jobs/${created.json.id}`))).json.result.error, "canceled by root");
        assert.equal((await asBrowser(root, v1("/jobs/999999/cancel"), { method: "POST" })).status, 404);
      } finally {
        await sched?.stop();
        await silent.close();
      }
    });

    it("lists schedulers and seed peers with state, address, port and last keepalive; filters by cluster, name and state", async (t) => {
      if (skip) return t.skip(skip);
      const seed = startManagerKeepAlive({
        managerUrl: m.url,
        kind: "seed_peer",
        registration: { hostname: "seed-listed", ip: "127.0.0.7", port: 4010 },
        intervalMs: 200,
      });
      const sched = startManagerKeepAlive({
        managerUrl: m.url,
        kind: "scheduler",
        registration: { hostname: "sched-listed", ip: "127.0.0.8", port: 8002 },
        intervalMs: 200,
      });
      try {
        await Promise.all([seed.registered, sched.registered]);
        const r = await asBrowser(root, v1("/seed-peers?hostname=LISTED"));
        assert.equal(r.status, 200);
        assert.equal(r.json.length, 1);
        const [p] = r.json;
        assert.equal(p.hostname, "seed-listed");
        assert.equal(p.ip, "127.0.0.7");
        assert.equal(p.port, 4010);
        assert.equal(p.state, "active");
        assert.match(p.last_keepalive_at, TIME);
        assert.equal((await asBrowser(root, v1("/seed-peers?hostname=127.0.0.7"))).json.length, 1, "search matches the IP too");
        assert.equal((await asBrowser(root, v1(`/seed-peers/${p.id}`))).json.hostname, "seed-listed");
        assert.equal((await asBrowser(root, v1("/seed-peers/424242"))).status, 404);
        assert.deepEqual((await asBrowser(root, v1("/seed-peers?hostname=seed-listed&state=inactive"))).json, []);
        assert.equal((await asBrowser(root, v1(`/seed-peers?scheduler_cluster_id=${p.scheduler_cluster_id}&state=active`))).json.length >= 1, true);
        const scheds = (await asBrowser(root, v1("/schedulers?hostname=sched-listed"))).json;
        assert.deepEqual(
          scheds.map((s: { ip: string; port: number; url: string }) => [s.ip, s.port, s.url]),
          [["127.0.0.8", 8002, "http://127.0.0.8:8002"]],
        );
      } finally {
        await Promise.all([seed.stop(), sched.stop()]);
      }
    });

    it("documents the console API in its own OpenAPI document, the Open API in /oapi/v1's", async (t) => {
      if (skip) return t.skip(skip);
      const doc = (await api(v1("/openapi.json"))).json;
      assert.match(doc.openapi, /^3\./);
      for (const p of ["/api/v1/users/signin", "/api/v1/users/signout", "/api/v1/users/{id}/roles/{role}", "/api/v1/jobs/{id}/cancel", "/api/v1/seed-peers"]) {
        assert.ok(doc.paths[p], `${p} documented`);
      }
      assert.ok(doc.paths["/api/v1/schedulers"].get, "the list is documented");
      assert.ok(!doc.paths["/api/v1/schedulers"].post, "registration (cluster members only) is not");
      assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith("/oapi/")));
      const oapi = (await api(`${m.url}/oapi/v1/openapi.json`)).json;
      assert.ok(oapi.paths["/oapi/v1/jobs/{id}/cancel"].post);
      assert.ok(!Object.keys(oapi.paths).some((p) => p.startsWith("/api/v1")));
    });
  });
}

describe("console sessions expire", () => {
  it("a session past its expiry is refused (401), and sign-in starts a new one", async (t) => {
    const db = await createTestDatabase("sqlite");
    if ("skip" in db) return t.skip(db.skip);
    const m = await startTestManager(db.url, { consoleDir: false, sessionTtlMs: 1_000 });
    try {
      const s = await cookieSignIn(m.url, "root", ROOT_PASSWORD);
      assert.ok(Date.parse(s.expire) <= Date.now() + 2_000);
      assert.equal((await asBrowser(s, `${m.url}/api/v1/users/me`)).status, 200);
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(s.expire) - Date.now()) + 1_100));
      assert.equal((await asBrowser(s, `${m.url}/api/v1/users/me`)).status, 401);
      const again = await cookieSignIn(m.url, "root", ROOT_PASSWORD);
      assert.equal((await asBrowser(again, `${m.url}/api/v1/users/me`)).status, 200);
    } finally {
      await m.close();
      await db.drop();
    }
  });
});

describe("the console's files", () => {
  it("serves the app at / and at every client route, hashed assets cached for good, index.html never; APIs keep JSON 404s", async (t) => {
    const db = await createTestDatabase("sqlite");
    if ("skip" in db) return t.skip(db.skip);
    const dir = await mkdtemp(join(tmpdir(), "kiln-console-dir-"));
    await mkdir(join(dir, "assets"));
    await writeFile(join(dir, "index.html"), '<!doctype html><title>kiln</title><script type="module" src="/assets/app-1a2b3c4d.js"></script>');
    const js = "console.log('kiln console');".repeat(50);
    await writeFile(join(dir, "assets", "app-1a2b3c4d.js"), js);
    await writeFile(join(dir, "assets", "app-1a2b3c4d.js.gz"), gzipSync(js));
    const m = await startTestManager(db.url, { consoleDir: dir });
    try {
      for (const path of ["/", "/preheats", "/preheats/12?tab=log", "/tokens"]) {
        const r = await fetch(`${m.url}${path}`);
        assert.equal(r.status, 200, path);
        assert.match(await r.text(), /<title>kiln<\/title>/, path);
        assert.match(r.headers.get("content-type")!, /text\/html/, path);
        assert.equal(r.headers.get("cache-control"), "no-cache", path);
        assert.match(r.headers.get("content-security-policy")!, /default-src 'self'; script-src 'self'/, path);
        assert.match(r.headers.get("content-security-policy")!, /frame-ancestors 'none'/, path);
      }
      const asset = await fetch(`${m.url}/assets/app-1a2b3c4d.js`, { headers: { "accept-encoding": "identity" } });
      assert.equal(asset.status, 200);
      assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.match(asset.headers.get("content-type")!, /javascript/);
      assert.equal(await asset.text(), js);
      const gz = await new Promise<http.IncomingMessage>((resolve) =>
        http.get(`${m.url}/assets/app-1a2b3c4d.js`, { headers: { "accept-encoding": "gzip" } }, resolve),
      );
      gz.resume();
      assert.equal(gz.headers["content-encoding"], "gzip", "the pre-compressed copy is sent");
      const missing = await fetch(`${m.url}/assets/app-00000000.js`);
      assert.equal(missing.status, 404, "a missing asset is not answered with the page");
      assert.match(((await missing.json()) as { message: string }).message, /no route/);
      const api404 = await fetch(`${m.url}/api/v1/no-such-thing`);
      assert.equal(api404.status, 404);
      assert.match(api404.headers.get("content-type")!, /json/);
      assert.equal((await fetch(`${m.url}/oapi/v1/jobs`)).status, 401, "the Open API is still there");
      assert.equal((await fetch(`${m.url}/preheats`, { method: "POST" })).status, 404, "only GET routes fall back to the page");
    } finally {
      await m.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says the console is not built when there is none, and still serves the API", async (t) => {
    const db = await createTestDatabase("sqlite");
    if ("skip" in db) return t.skip(db.skip);
    const m = await startTestManager(db.url, { consoleDir: false });
    try {
      const r = await fetch(`${m.url}/`);
      assert.equal(r.status, 200);
      assert.match(await r.text(), /web console is not built here \(npm run build\)/);
      assert.equal((await fetch(`${m.url}/preheats`)).status, 404);
    } finally {
      await m.close();
      await db.drop();
    }
  });
});
