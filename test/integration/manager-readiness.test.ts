/**
 * Liveness and readiness of the manager: with its Redis or its database gone every
 * sign-in fails, so a load balancer must stop sending it traffic (GET /ready answers
 * 503 naming what does not answer) while the process itself stays alive (GET /healthy
 * 200: a restart would not bring the database back). Its own Redis (a redis-server
 * this test starts and kills) and a PostgreSQL database reached through a TCP relay
 * this test closes and opens again.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { freePort } from "../helpers/registry.js";
import { api, ROOT_PASSWORD, startTestManager } from "../helpers/manager.js";
import { createTestDatabase, type TestDatabase } from "../helpers/manager-db.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import type { RunningManager } from "../../src/manager/index.js";

/** A TCP relay to `target` on a port of its own that the test can close (every connection cut) and open again. */
function tcpRelay(target: { host: string; port: number }, port: number) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  return {
    port,
    open: () =>
      new Promise<void>((resolve, reject) => {
        server = net.createServer((client) => {
          const upstream = net.connect(target.port, target.host);
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on("error", () => undefined);
            s.on("close", () => {
              sockets.delete(s);
              client.destroy();
              upstream.destroy();
            });
          }
          client.pipe(upstream).pipe(client);
        });
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server) return resolve();
        server.close(() => resolve());
      }),
  };
}

function startRedisServer(port: number): Promise<ChildProcess> {
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  return new Promise((resolve, reject) => {
    proc.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`)));
    const poll = () => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(proc);
      });
      s.on("error", () => setTimeout(poll, 50));
    };
    poll();
  });
}

async function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGKILL");
  await exited;
}

describe("manager: liveness (/healthy) and readiness (/ready) with Redis and the database", () => {
  let skip: string | undefined;
  let db: TestDatabase | undefined;
  let relay: ReturnType<typeof tcpRelay>;
  let redisPort: number;
  let redis: ChildProcess | undefined;
  let manager: RunningManager | undefined;

  const get = (path: string) => api(`${manager!.url}${path}`);
  /** Polls `path` until it answers `status` (Redis reconnects, pools notice a dead connection on their own time). */
  const until = async (path: string, status: number) => {
    let last: Awaited<ReturnType<typeof get>> | undefined;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      last = await get(path);
      if (last.status === status) return last;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.fail(`${path} never answered ${status}; last: ${last?.status} ${JSON.stringify(last?.json)}`);
  };

  before(async () => {
    skip = await prerequisitesMissing("manager readiness", { "redis-server": "redis-server" });
    if (skip) return;
    const created = await createTestDatabase("postgres");
    if ("skip" in created) {
      skip = created.skip;
      return;
    }
    db = created;
    const dbUrl = new URL(db.url);
    relay = tcpRelay({ host: dbUrl.hostname, port: Number(dbUrl.port || 5432) }, await freePort());
    await relay.open();
    dbUrl.host = `127.0.0.1:${relay.port}`;
    redisPort = await freePort();
    redis = await startRedisServer(redisPort);
    manager = await startTestManager(dbUrl.toString(), { redisUrl: `redis://127.0.0.1:${redisPort}`, redisPrefix: "kiln-readiness" });
  });

  after(async () => {
    await manager?.close();
    await stopProcess(redis);
    await relay?.close();
    await db?.drop();
  });

  it("ready with both; Redis gone: sign-in fails, /ready 503 naming Redis, /healthy 200; Redis back: ready again", async (t) => {
    if (skip) return t.skip(skip);
    const ready = await get("/ready");
    assert.equal(ready.status, 200, JSON.stringify(ready.json));
    assert.deepEqual(ready.json, { ready: true, checks: { database: "ok", redis: "ok" } });
    assert.equal((await get("/healthy")).status, 200);

    await stopProcess(redis);
    const signIn = await api(`${manager!.url}/api/v1/users/signin`, { body: { name: "root", password: ROOT_PASSWORD } });
    assert.equal(signIn.status, 500, `with Redis gone a sign-in cannot be counted: ${JSON.stringify(signIn.json)}`);
    const notReady = await until("/ready", 503);
    assert.equal(notReady.json.ready, false);
    assert.equal(notReady.json.checks.database, "ok");
    assert.match(notReady.json.checks.redis, /^Redis at redis:\/\/127\.0\.0\.1:\d+\/? (did not answer within \d+ ms|failed: .+)$/);
    assert.match(notReady.json.message, /^not ready: Redis at .+$/);
    const live = await get("/healthy");
    assert.equal(live.status, 200, "the process runs: no restart for a dependency that is away");

    redis = await startRedisServer(redisPort);
    const back = await until("/ready", 200);
    assert.deepEqual(back.json, { ready: true, checks: { database: "ok", redis: "ok" } });
  });

  it("database gone: /ready 503 naming the database, /healthy 200; database back: ready again", async (t) => {
    if (skip) return t.skip(skip);
    await relay.close();
    const notReady = await until("/ready", 503);
    assert.equal(notReady.json.checks.redis, "ok");
    assert.match(notReady.json.checks.database, /^the database \(postgres\) (did not answer within \d+ ms|failed: .+)$/);
    assert.match(notReady.json.message, /^not ready: the database \(postgres\) /);
    assert.equal((await get("/healthy")).status, 200);

    await relay.open();
    await until("/ready", 200);
  });
});
