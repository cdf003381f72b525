/**
 * Client sockets that misbehave must never end a process. `kiln up` runs manager,
 * scheduler, seed peer and peer in one process, so one unhandled socket error on any
 * port would take all of them down. Every port gets connections that stop at a random
 * point of a request and are reset (SO_LINGER 0), and connections that walk away at
 * every stage of every answer it gives (headers in, a few bytes, mid-body, between
 * blocks; reset or closed with bytes unread), for complete tasks and tasks still
 * downloading; every port must still serve, and serve right.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import http from "node:http";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { freePort } from "../helpers/registry.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { metric } from "../helpers/cluster.js";
import { CUT_STAGES, CUT_WAYS, cutAnswer } from "../helpers/cut-answer.js";
import { uploadCredentialFor } from "../../src/common/secret.js";
import { UPLOAD_CREDENTIAL_HEADER } from "../../src/api/peer.js";

const MiB = 1024 * 1024;
/** Six 1 MiB blocks: a 4 MiB piece 0 and a 2 MiB piece 1. */
const COMPLETE = makeFile(6 * MiB);
/** Piece 0 arrives at once, piece 1 trickles for minutes: the task stays in progress while the test runs. */
const IN_PROGRESS = makeFile(8 * MiB);
const NAMES = ["--manager-port", "--scheduler-port", "--peer-port", "--proxy-port", "--metrics-port", "--seed-port", "--seed-metrics-port"] as const;
type PortName = (typeof NAMES)[number];

/** Requests each port could receive; a prefix of one, cut at a random byte, is what the reset interrupts. */
const REQUESTS = [
  "CONNECT 10.9.9.9:443 HTTP/1.1\r\nHost: 10.9.9.9:443\r\n\r\n",
  "CONNECT not a target HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET http://10.9.9.9/ HTTP/1.1\r\nHost: 10.9.9.9\r\n\r\n",
  `GET /v2/library/alpine/blobs/sha256:${"a".repeat(64)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'POST /api/v1/users/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"name":"root","password":"wrong-pass"}',
  'POST /oapi/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nContent-Length: 100000\r\n\r\n{"type":',
  `GET /pieces/${"b".repeat(64)}/0 HTTP/1.1\r\nHost: x\r\n\r\n`,
  "POST /prefetch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
  "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /healthy HTTP/1.1\r\nHost: x\r\n\r\n",
];

/** Connects, writes `bytes`, waits `waitMs`, then resets the connection (RST, not FIN). */
function resetAfter(port: number, bytes: string, waitMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("close", () => resolve());
    socket.on("connect", () => {
      socket.write(bytes);
      setTimeout(() => socket.resetAndDestroy(), waitMs);
    });
  });
}

/** A GET (or HEAD) as raw bytes; `absolute` targets go to the proxy. */
function request(target: string, headers: Record<string, string> = {}, method = "GET"): string {
  const lines = Object.entries({ host: "127.0.0.1", ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
  return `${method} ${target} HTTP/1.1\r\n${lines.join("")}\r\n`;
}

/** A whole answer read with a well-behaved client: status, task ID header, SHA-256 of the body. */
function download(port: number, target: string, headers: Record<string, string> = {}): Promise<{ status: number; taskId: string; sha256: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: target, headers, agent: false }, (res) => {
        const hash = createHash("sha256");
        res.on("data", (d: Buffer) => hash.update(d));
        res.on("error", reject);
        res.on("end", () => resolve({ status: res.statusCode ?? 0, taskId: String(res.headers["x-dragonfly-task-id"] ?? ""), sha256: hash.digest("hex") }));
      })
      .on("error", reject);
  });
}

/** Polls `check` until it holds (what the cluster does in the background: seeding, piece transfers). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  assert.fail(`${what}: never happened`);
}

describe("chaos on every port of kiln up", () => {
  let up: KilnProcess;
  let dir: string;
  /** Serves the complete task's content at full speed. */
  let origin: TestOrigin;
  /** Serves the in-progress task's first piece at once, then trickles. */
  let slowOrigin: TestOrigin;
  const port = {} as Record<PortName, number>;
  after(async () => {
    await up?.kill();
    await origin?.close();
    await slowOrigin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  before(async () => {
    origin = await startOrigin();
    origin.add("/complete", COMPLETE);
    slowOrigin = await startOrigin({ rateBytes: 32 * 1024, fastBytes: 4 * MiB + 256 * 1024 });
    slowOrigin.add("/in-progress", IN_PROGRESS);
    dir = await mkdtemp(join(tmpdir(), "kiln-chaos-"));
    for (const name of NAMES) port[name] = await freePort();
    const allow = [origin, slowOrigin].flatMap((o) => ["--proxy-allow-host", `127.0.0.1:${o.port}`]);
    up = await spawnKiln(
      ["up", "--host", "127.0.0.1", "--advertise-ip", "127.0.0.1", "--data-dir", dir, ...allow, ...NAMES.flatMap((n) => [n, String(port[n])])],
      { timeoutMs: 60_000 },
    );
    // The ready line is the first component's: wait for the last one's ports.
    await until("every port answers", async () =>
      (await Promise.all(NAMES.map((n) => fetch(`http://127.0.0.1:${port[n]}${healthPath(n)}`)))).every((r) => r.ok),
    );
  });

  it("connections reset at random points of a request leave every process serving", async () => {
    // The reported reproduction first: a refused CONNECT followed by a reset, five times.
    for (let i = 0; i < 5; i++) await resetAfter(port["--proxy-port"], REQUESTS[0]!, 20);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...NAMES),
        fc.integer({ min: 0, max: REQUESTS.length - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 30 }),
        async (name, r, cut, waitMs) => {
          const raw = REQUESTS[r]!;
          await resetAfter(port[name], raw.slice(0, Math.round(cut * raw.length)), waitMs);
        },
      ),
      { numRuns: 300 },
    );
    await assertAllServing(up, port);
  });

  it("clients walking away at every stage of every answer, on every port, for complete and in-progress tasks, end nothing and leak nothing", async () => {
    const useP2P = { "x-dragonfly-use-p2p": "true" };
    const completeUrl = `${origin.url}/complete`;
    const inProgressUrl = `${slowOrigin.url}/in-progress`;
    // Upload ports serve content to members of their cluster only: kiln up's peers present this.
    const member = { [UPLOAD_CREDENTIAL_HEADER]: uploadCredentialFor((await readFile(join(dir, "cluster-secret"), "utf8")).trim()) };
    const head = (p: number, path: string) => fetch(`http://127.0.0.1:${p}${path}`, { method: "HEAD", headers: member });
    // A complete task on the peer (and its seed), and one that stays in progress: a client keeps it downloading.
    const keeper = http.get({ host: "127.0.0.1", port: port["--proxy-port"], path: inProgressUrl, headers: useP2P, agent: false });
    keeper.on("error", () => undefined);
    const [first, inProgress] = await Promise.all([
      download(port["--proxy-port"], completeUrl, useP2P),
      new Promise<string>((resolve) => keeper.on("response", (res) => resolve(String(res.headers["x-dragonfly-task-id"])))),
    ]);
    assert.equal(first.sha256, COMPLETE.sha256);
    const complete = first.taskId;
    const uploadPorts = [port["--peer-port"], port["--seed-port"]];
    for (const p of uploadPorts) {
      await until(`task complete on upload port ${p}`, async () => (await head(p, `/tasks/${complete}`)).status === 200);
      await until(`piece 0 of the in-progress task on ${p}`, async () => (await head(p, `/pieces/${inProgress}/0`)).status === 200);
      assert.equal((await head(p, `/tasks/${inProgress}`)).status, 404, "the slow task must still be in progress");
    }

    const consoleIndex = await (await fetch(`http://127.0.0.1:${port["--manager-port"]}/`)).text();
    const asset = /\/assets\/[\w.-]+\.js/.exec(consoleIndex)?.[0];
    const answers: { port: PortName; what: string; raw: string; status: number }[] = [
      { port: "--manager-port", what: "console page", raw: request("/"), status: 200 },
      ...(asset ? [{ port: "--manager-port" as const, what: "console script", raw: request(asset), status: 200 }] : []),
      { port: "--manager-port", what: "Open API refusal", raw: request("/oapi/v1/jobs"), status: 401 },
      { port: "--scheduler-port", what: "health", raw: request("/healthy"), status: 200 },
      { port: "--scheduler-port", what: "API refusal", raw: request(`/api/v1/tasks/${complete}`), status: 401 },
      { port: "--proxy-port", what: "complete task", raw: request(completeUrl, useP2P), status: 200 },
      {
        port: "--proxy-port",
        what: "complete task, range with trailers",
        raw: request(completeUrl, { ...useP2P, range: "bytes=1000-", te: "trailers" }),
        status: 206,
      },
      { port: "--proxy-port", what: "in-progress task", raw: request(inProgressUrl, useP2P), status: 200 },
      { port: "--proxy-port", what: "forwarded answer", raw: request(completeUrl), status: 200 },
      {
        port: "--proxy-port",
        what: "CONNECT tunnel",
        raw: `${request(origin.url.slice("http://".length), {}, "CONNECT")}${request("/complete")}`,
        status: 200,
      },
      { port: "--metrics-port", what: "metrics", raw: request("/metrics"), status: 200 },
      { port: "--seed-metrics-port", what: "metrics", raw: request("/metrics"), status: 200 },
    ];
    for (const p of ["--peer-port", "--seed-port"] as const) {
      answers.push(
        { port: p, what: "complete task", raw: request(`/tasks/${complete}`, member), status: 200 },
        { port: p, what: "complete task, range", raw: request(`/tasks/${complete}`, { ...member, range: "bytes=100-" }), status: 206 },
        { port: p, what: "piece of a complete task", raw: request(`/pieces/${complete}/0`, member), status: 200 },
        { port: p, what: "piece of an in-progress task", raw: request(`/pieces/${inProgress}/0`, member), status: 200 },
        { port: p, what: "in-progress task (not served whole)", raw: request(`/tasks/${inProgress}`, member), status: 404 },
        { port: p, what: "have feed of a complete task", raw: request(`/feed/${complete}`, member), status: 200 },
        { port: p, what: "have feed of an in-progress task", raw: request(`/feed/${inProgress}`, member), status: 200 },
        { port: p, what: "a stranger's request", raw: request(`/tasks/${complete}`), status: 401 },
      );
    }
    let previous = "no cut yet";
    for (const answer of answers) {
      for (const stage of CUT_STAGES) {
        for (const way of CUT_WAYS) {
          assert.equal(up.proc.exitCode, null, `kiln up exited after ${previous}:\n${up.stderr.slice(-20).join("\n")}`);
          previous = `${answer.port} ${answer.what} was cut at ${stage} (${way})`;
          const cut = await cutAnswer(port[answer.port], answer.raw, stage, way);
          // No answer at all: a process that is going down says why on stderr once it is gone.
          if (!cut.status) await Promise.race([once(up.proc, "exit"), sleep(2000)]);
          const died = up.proc.exitCode === null ? "" : `; kiln up exited:\n${up.stderr.slice(-20).join("\n")}`;
          assert.match(cut.status ?? "no answer", new RegExp(`^HTTP/1.1 ${answer.status} `), `${previous}${died}`);
        }
      }
    }
    keeper.destroy();

    await assertAllServing(up, port);
    // Every cut upload gave its slot back, and the content still comes out whole and right.
    for (const [p, metrics] of [
      [port["--peer-port"], port["--metrics-port"]],
      [port["--seed-port"], port["--seed-metrics-port"]],
    ] as const) {
      await until(`upload slots of ${p} free again`, async () => (await metric(`http://127.0.0.1:${metrics}/metrics`, "kiln_peer_active_uploads")) === 0);
      assert.equal((await download(p, `/tasks/${complete}`, member)).sha256, COMPLETE.sha256, `upload port ${p}`);
      // The process guard is the last resort: every cut above must have been handled where it happened.
      const survived = await metric(`http://127.0.0.1:${metrics}/metrics`, "kiln_process_survived_errors_total");
      const logged = up.lines.filter((l) => l.includes('"event":"survived"'));
      assert.equal(survived, 0, `errors only the process guard caught:\n${logged.slice(0, 5).join("\n")}`);
    }
    assert.equal((await download(port["--proxy-port"], completeUrl, useP2P)).sha256, COMPLETE.sha256, "proxy");
  });
});

/** The process is alive and every port answers its health (or metrics) path. */
async function assertAllServing(up: KilnProcess, port: Record<PortName, number>): Promise<void> {
  assert.equal(up.proc.exitCode, null, `kiln up exited:\n${up.stderr.slice(-20).join("\n")}`);
  for (const name of NAMES) {
    const r = await fetch(`http://127.0.0.1:${port[name]}${healthPath(name)}`);
    assert.equal(r.status, 200, `${name} ${port[name]}${healthPath(name)}`);
  }
}

function healthPath(name: PortName): string {
  return name.includes("metrics") ? "/metrics" : "/healthy";
}
