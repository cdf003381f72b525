/**
 * Bad input to every scheduler route, every upload-server route and the proxy, on
 * real processes: always a 4xx with a JSON `{message}`, never a 5xx, never a byte
 * outside a task, and the processes keep serving.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { parseFilter, taskIdFor } from "../../src/common/task-id.js";
import { DEFAULT_PROXY_FILTER } from "../../src/common/defaults.js";
import { CLUSTER_SECRET_HEADER } from "../../src/api/common.js";

const MiB = 1024 * 1024;
const API = "/api/v1";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/**
 * One HTTP request with the path sent exactly as given (no client-side normalisation).
 * With `declaredLength`, only announces a body of that size (sends `body`, never the
 * rest): a server must refuse it from the headers alone.
 */
function raw(
  port: number,
  method: string,
  path: string,
  opts: { body?: string | Buffer; headers?: Record<string, string>; declaredLength?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = { ...opts.headers, ...(opts.declaredLength !== undefined ? { "content-length": String(opts.declaredLength) } : {}) };
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") });
        if (opts.declaredLength !== undefined) req.destroy();
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    if (opts.declaredLength !== undefined) req.write(opts.body ?? "");
    else req.end(opts.body);
  });
}

/** A request body sent as JSON: strings and bytes as they are, anything else serialised. */
const json = (body: unknown): { body: string | Buffer; headers: Record<string, string> } => ({
  body: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

/** A 4xx with a JSON body carrying a human-readable message. */
function assert4xxJson(r: Reply, what: string, status?: number): { message: string } {
  const ctx = `${what} → ${r.status} ${r.text.slice(0, 300)}`;
  assert.ok(r.status >= 400 && r.status < 500, `expected a 4xx: ${ctx}`);
  if (status !== undefined) assert.equal(r.status, status, ctx);
  assert.match(String(r.headers["content-type"]), /application\/json/, ctx);
  let parsed: unknown;
  assert.doesNotThrow(() => (parsed = JSON.parse(r.text)), ctx);
  const message = (parsed as { message?: unknown }).message;
  assert.equal(typeof message, "string", ctx);
  assert.ok((message as string).length > 0, ctx);
  return parsed as { message: string };
}

/** Any string that can be percent-encoded (no lone surrogates). */
const anyId = (maxLength: number) =>
  fc.string({ minLength: 1, maxLength, unit: "binary" }).filter((s) => {
    try {
      encodeURIComponent(s);
      return true;
    } catch {
      return false;
    }
  });

interface Case {
  name: string;
  method: string;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  declaredLength?: number;
  status?: number;
}

/** The upload port's prefetch needs it: what the peer under test announced to its scheduler. */
const CONTROL_TOKEN = "bad-input-control-token-0123456789abcdef";
const CLUSTER_SECRET = "bad-input-cluster-secret-0123456789abcdef";

describe("bad input", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  let peer: PeerHandle;
  let schedPort: number;
  let file: OriginFile;
  /** A task the peer holds. */
  let K: string;
  let fileUrl: string;
  let tmp: string;

  before(async () => {
    origin = await startOrigin();
    file = makeFile(6 * MiB);
    origin.add("/held.bin", file);
    fileUrl = `${origin.url}/held.bin`;
    // Long host timeout: the fake host announced below must not be collected mid-test.
    // With a cluster secret, as in production: upload ports then serve members only (uploadHeaders()).
    cluster = await TestCluster.start({ schedulerArgs: ["--host-timeout-ms", "600000"], clusterSecret: CLUSTER_SECRET });
    schedPort = cluster.scheduler.ready.port as number;
    peer = await cluster.addPeer("peer", { env: { KILN_CONTROL_TOKEN: CONTROL_TOKEN } });
    tmp = await mkdtemp(join(tmpdir(), "kiln-bad-input-"));
    const r = await cluster.get(peer, fileUrl, join(tmp, "held.bin"));
    assert.equal(r.code, 0, r.stderr);
    K = taskIdFor({ url: fileUrl, filteredQueryParams: parseFilter(DEFAULT_PROXY_FILTER) });
    assert.match(r.stderr, new RegExp(`task ${K}`));
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  describe("scheduler API", () => {
    const X = "c".repeat(64); // a valid task ID nobody has
    let T: string; // a task with a known peer
    const HOST = "bad-input-host";
    const CHILD_HOST = "bad-input-child-host";
    const sched = (c: Case) => raw(schedPort, c.method, c.path, { ...c, headers: { [CLUSTER_SECRET_HEADER]: CLUSTER_SECRET, ...c.headers } });

    const host = (o: Record<string, unknown> = {}) => ({
      id: HOST,
      hostname: "h",
      ip: "127.0.0.1",
      uploadPort: 9,
      isSeed: false,
      uploadSlots: 4,
      freeUploadSlots: 4,
      controlToken: "k".repeat(43),
      ...o,
    });
    const piece = (n: number) => ({ number: n, digest: `sha256:${"d".repeat(64)}`, length: 10 });
    const failure = { parentId: "someone", pieceNumber: 0, kind: "timeout", message: "stalled" };
    const failed = { state: "failed", error: { code: "INTERNAL", status: 500, message: "m" } };

    before(async () => {
      for (const h of [host(), host({ id: CHILD_HOST })])
        assert.equal((await sched({ name: "announce", method: "POST", path: `${API}/hosts`, ...json(h) })).status, 200);
      const reg = await sched({
        name: "register",
        method: "POST",
        path: `${API}/peers`,
        ...json({ peerId: "src", hostId: HOST, download: { url: `${origin.url}/sched-only` } }),
      });
      assert.equal(reg.status, 200, reg.text);
      const reply = JSON.parse(reg.text) as { taskId: string; action: string };
      assert.equal(reply.action, "back_to_source");
      T = reply.taskId;
      const rep = await sched({
        name: "layout",
        method: "POST",
        path: `${API}/tasks/${T}/peers/src/pieces`,
        ...json({ contentLength: 10, pieceLength: 4 * MiB, pieces: [piece(0)] }),
      });
      assert.equal(rep.status, 200, rep.text);
      const child = await sched({
        name: "child",
        method: "POST",
        path: `${API}/peers`,
        ...json({ peerId: "child", hostId: CHILD_HOST, download: { url: `${origin.url}/sched-only` } }),
      });
      assert.equal(child.status, 200, child.text);
    });

    /** Task-ID and peer-ID tricks; each gives a 4xx (which one depends on where it fails). */
    const idTricks = (known: string) => [
      "..%2F..%2Fetc%2Fpasswd",
      "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
      known.toUpperCase(),
      known.slice(1),
      `${known}a`,
      "a".repeat(5000),
      "%00",
      "%ZZ",
      `${known}%2F..`,
      "%20",
    ];
    const peerTricks = ["..%2F..%2Fetc%2Fpasswd", "a%2Fb", "x".repeat(5000), "%00", "%ZZ", "%3Cscript%3E"];

    function routeCases(): Case[] {
      const cases: Case[] = [];
      const peerRoutes = [
        { m: "GET", s: "/schedule" },
        { m: "POST", s: "/pieces", b: { pieces: [] } },
        { m: "POST", s: "/failures", b: failure },
        { m: "POST", s: "/result", b: failed },
        { m: "DELETE", s: "" },
      ];
      for (const r of peerRoutes) {
        const body = r.b ? json(r.b) : {};
        cases.push({ name: `${r.m} peer route${r.s}: unknown task`, method: r.m, path: `${API}/tasks/${X}/peers/src${r.s}`, ...body, status: 404 });
        cases.push({ name: `${r.m} peer route${r.s}: unknown peer`, method: r.m, path: `${API}/tasks/${T}/peers/nobody${r.s}`, ...body, status: 404 });
        for (const t of idTricks(T))
          cases.push({ name: `${r.m} peer route${r.s}: task id ${t.slice(0, 40)}`, method: r.m, path: `${API}/tasks/${t}/peers/src${r.s}`, ...body });
        for (const p of peerTricks)
          cases.push({ name: `${r.m} peer route${r.s}: peer id ${p.slice(0, 40)}`, method: r.m, path: `${API}/tasks/${T}/peers/${p}${r.s}`, ...body });
        cases.push({ name: `${r.m} peer route${r.s}: raw ../ in the path`, method: r.m, path: `${API}/tasks/../../../etc/passwd/peers/src${r.s}`, ...body });
        cases.push({ name: `${r.m} peer route${r.s}: raw ../ as peer`, method: r.m, path: `${API}/tasks/${T}/peers/../../${r.s}`, ...body });
        if (r.b) {
          cases.push({ name: `${r.m}${r.s}: malformed JSON`, method: r.m, path: `${API}/tasks/${T}/peers/src${r.s}`, ...json('{"pieces": ['), status: 400 });
          cases.push({ name: `${r.m}${r.s}: empty JSON body`, method: r.m, path: `${API}/tasks/${T}/peers/src${r.s}`, ...json(""), status: 400 });
          cases.push({ name: `${r.m}${r.s}: array body`, method: r.m, path: `${API}/tasks/${T}/peers/src${r.s}`, ...json([]), status: 400 });
          cases.push({ name: `${r.m}${r.s}: null body`, method: r.m, path: `${API}/tasks/${T}/peers/src${r.s}`, ...json("null"), status: 400 });
          cases.push({ name: `${r.m}${r.s}: missing fields`, method: r.m, path: `${API}/tasks/${T}/peers/src${r.s}`, ...json({}), status: 400 });
          cases.push({
            name: `${r.m}${r.s}: text/plain`,
            method: r.m,
            path: `${API}/tasks/${T}/peers/src${r.s}`,
            body: "hello",
            headers: { "content-type": "text/plain" },
          });
          cases.push({
            name: `${r.m}${r.s}: unknown content type`,
            method: r.m,
            path: `${API}/tasks/${T}/peers/src${r.s}`,
            body: "<x/>",
            headers: { "content-type": "application/xml" },
            status: 415,
          });
        }
      }
      const onSrc = (s: string, b: unknown, name: string, status = 400): Case => ({
        name,
        method: "POST",
        path: `${API}/tasks/${T}/peers/src${s}`,
        ...json(b),
        status,
      });
      cases.push(
        onSrc("/pieces", { pieces: "x" }, "pieces: wrong type"),
        onSrc("/pieces", { pieces: [{ ...piece(0), digest: "md5:8a04994a666b4e4b20a2fd9e5a44f44c" }] }, "pieces: md5 digest"),
        onSrc("/pieces", { pieces: [{ ...piece(0), digest: `sha256:${"D".repeat(64)}` }] }, "pieces: uppercase digest"),
        onSrc("/pieces", { pieces: [{ ...piece(0), number: -1 }] }, "pieces: negative number"),
        onSrc("/pieces", { pieces: [{ ...piece(0), number: 1.5 }] }, "pieces: fractional number"),
        onSrc("/pieces", { pieces: [{ ...piece(0), number: "0" }] }, "pieces: number as string"),
        onSrc("/pieces", { pieces: [{ ...piece(0), length: -1 }] }, "pieces: negative length"),
        onSrc("/pieces", { pieces: [], pieceLength: 0 }, "pieces: zero piece length"),
        onSrc("/pieces", { pieces: [], contentLength: -5 }, "pieces: negative content length"),
        onSrc("/pieces", { pieces: [], pieceLength: 8 * MiB }, "pieces: changing the piece length", 409),
        {
          name: "pieces: a child setting the content length",
          method: "POST",
          path: `${API}/tasks/${T}/peers/child/pieces`,
          ...json({ contentLength: 99, pieces: [] }),
          status: 409,
        },
        onSrc("/failures", { ...failure, kind: "bogus" }, "failures: unknown kind"),
        onSrc("/failures", { ...failure, pieceNumber: -1 }, "failures: negative piece"),
        onSrc("/failures", { ...failure, parentId: "../x/y" }, "failures: parent id with slashes"),
        onSrc("/failures", { ...failure, message: "m".repeat(2001) }, "failures: message too long"),
        onSrc("/failures", { pieceNumber: 0, kind: "timeout", message: "" }, "failures: missing parentId"),
        onSrc("/result", { state: "done" }, "result: unknown state"),
        onSrc("/result", { state: "succeeded" }, "result: succeeded without a length"),
        onSrc("/result", { state: "failed" }, "result: failed without an error"),
        onSrc("/result", { state: "failed", error: { code: "X", status: 99, message: "m" } }, "result: status out of range"),
        onSrc("/result", { state: "succeeded", contentLength: 11 }, "result: a length the task does not have", 409),
      );
      for (const [q, what] of [
        ["since=abc", "since not a number"],
        ["count=-1", "count -1"],
        ["count=65", "count 65"],
        ["waitMs=-1", "negative wait"],
        ["waitMs=30001", "wait too long"],
        ["since=1e400", "since overflow"],
      ]) {
        cases.push({ name: `schedule: ${what}`, method: "GET", path: `${API}/tasks/${T}/peers/src/schedule?${q}`, status: 400 });
      }

      // GET /tasks/:taskId
      cases.push({ name: "task status: unknown task", method: "GET", path: `${API}/tasks/${X}`, status: 404 });
      for (const t of idTricks(T)) cases.push({ name: `task status: ${t.slice(0, 40)}`, method: "GET", path: `${API}/tasks/${t}` });
      cases.push({ name: "task status: raw ../", method: "GET", path: `${API}/tasks/../../../../etc/passwd` });

      // Hosts
      const hostBad: [unknown, string][] = [
        [{ ...host(), uploadPort: "80" }, "port as string"],
        [{ ...host(), uploadPort: 0 }, "port 0"],
        [{ ...host(), uploadPort: 70000 }, "port 70000"],
        [{ ...host(), isSeed: "yes" }, "isSeed as string"],
        [{ ...host(), id: "../../etc/passwd" }, "id with slashes"],
        [{ ...host(), id: "x".repeat(201) }, "id too long"],
        [{ ...host(), id: "" }, "empty id"],
        [{ ...host(), freeUploadSlots: -1 }, "negative slots"],
        [{ ...host(), hostname: "" }, "empty hostname"],
        [{ ...host(), controlToken: "short" }, "control token too short"],
        [{ ...host(), controlToken: `${"x".repeat(40)} ;` }, "control token with other characters"],
        [(({ controlToken: _t, ...rest }) => rest)(host()), "missing control token"],
        [{}, "empty object"],
        [(({ id: _id, ...rest }) => rest)(host()), "missing id"],
        [[host()], "array"],
        [42, "number"],
        ['"str"', "string"],
      ];
      for (const [b, what] of hostBad)
        cases.push({ name: `announce: ${what}`, method: "POST", path: `${API}/hosts`, ...json(typeof b === "string" ? b : JSON.stringify(b)), status: 400 });
      cases.push({ name: "announce: malformed JSON", method: "POST", path: `${API}/hosts`, ...json('{"id": "x",'), status: 400 });
      cases.push({ name: "announce: __proto__ key", method: "POST", path: `${API}/hosts`, ...json('{"__proto__": {"isSeed": true}}'), status: 400 });
      cases.push({ name: "announce: no body", method: "POST", path: `${API}/hosts`, status: 400 });
      cases.push({ name: "announce: body over the limit", method: "POST", path: `${API}/hosts`, ...json('{"id":"'), declaredLength: 5 * MiB, status: 413 });
      cases.push({ name: "leave: unknown host", method: "DELETE", path: `${API}/hosts/nobody`, status: 404 });
      for (const h of peerTricks) cases.push({ name: `leave: host id ${h.slice(0, 40)}`, method: "DELETE", path: `${API}/hosts/${h}` });
      cases.push({ name: "leave: raw ../", method: "DELETE", path: `${API}/hosts/../../etc/passwd` });

      // Peers
      const reg = (o: Record<string, unknown>) => ({ peerId: "new-peer", hostId: HOST, download: { url: `${origin.url}/x` }, ...o });
      const regBad: [unknown, string, number?][] = [
        [reg({ download: { url: 42 } }), "url as number"],
        [reg({ download: { url: "not a url" } }), "url not a URL"],
        [reg({ download: { url: `${origin.url}/x`, pieceLength: 1 } }), "piece length too small"],
        [reg({ download: { url: `${origin.url}/x`, pieceLength: 2 * 1024 * MiB } }), "piece length too large"],
        [reg({ download: { url: `${origin.url}/x`, pieceLength: "4MiB" } }), "piece length as string"],
        [reg({ download: { url: `${origin.url}/x`, headers: "x" } }), "headers as string"],
        [reg({ download: { url: `${origin.url}/x`, filteredQueryParams: "Expires" } }), "filter as string"],
        [reg({ peerId: "a/b" }), "peer id with a slash"],
        [reg({ hostId: "../h" }), "host id with a slash"],
        [reg({ download: undefined }), "missing download"],
        [reg({ hostId: "nobody" }), "unknown host", 404],
        [reg({ peerId: "src", download: { url: `${origin.url}/sched-only` } }), "duplicate peer", 409],
      ];
      for (const [b, what, status] of regBad)
        cases.push({ name: `register: ${what}`, method: "POST", path: `${API}/peers`, ...json(b), status: status ?? 400 });
      cases.push({ name: "register: malformed JSON", method: "POST", path: `${API}/peers`, ...json("{peerId: src}"), status: 400 });

      // Preheat
      const preBad: [unknown, string][] = [
        [{}, "missing download"],
        [{ download: { url: "nope" } }, "bad url"],
        [{ download: { url: `${origin.url}/x` }, scope: "everyone" }, "unknown scope"],
        [{ download: { url: `${origin.url}/x` }, count: 0 }, "count 0"],
        [{ download: { url: `${origin.url}/x` }, percentage: 101 }, "percentage 101"],
        [{ download: { url: `${origin.url}/x` }, ips: "127.0.0.1" }, "ips as string"],
      ];
      for (const [b, what] of preBad) cases.push({ name: `preheat: ${what}`, method: "POST", path: `${API}/preheat`, ...json(b), status: 400 });
      cases.push({ name: "preheat: malformed JSON", method: "POST", path: `${API}/preheat`, ...json("[[["), status: 400 });

      // Unknown routes and methods
      cases.push({ name: "unknown route", method: "GET", path: `${API}/nothing`, status: 404 });
      cases.push({ name: "wrong method on a route", method: "PUT", path: `${API}/hosts`, ...json(host()), status: 404 });
      cases.push({ name: "root ../", method: "GET", path: "/../../../../etc/passwd", status: 404 });
      return cases;
    }

    it("every route answers bad input with a 4xx and a JSON message", async () => {
      const cases = routeCases();
      assert.ok(cases.length > 150, `${cases.length} cases`);
      const failures: string[] = [];
      for (const c of cases) {
        const r = await sched(c);
        try {
          assert4xxJson(r, `${c.name}: ${c.method} ${c.path.slice(0, 120)}`, c.status);
          assert.doesNotMatch(r.text, /root:/);
        } catch (e) {
          failures.push((e as Error).message.split("\n")[0]!);
        }
      }
      assert.deepEqual(failures, []);
    });

    it("IDs longer than a request line may be: refused with a 4xx, the scheduler keeps serving", async () => {
      const r = await sched({ name: "huge", method: "GET", path: `${API}/tasks/${"a".repeat(64 * 1024)}` });
      assert.ok(r.status >= 400 && r.status < 500, `${r.status}`);
      assert.equal((await sched({ name: "health", method: "GET", path: "/healthy" })).status, 200);
    });

    it("property: random bytes as a JSON body never yield a 5xx", async () => {
      const routes = [
        `${API}/hosts`,
        `${API}/peers`,
        `${API}/preheat`,
        `${API}/tasks/${T}/peers/src/pieces`,
        `${API}/tasks/${T}/peers/src/failures`,
        `${API}/tasks/${T}/peers/child/result`,
      ];
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...routes), fc.uint8Array({ maxLength: 512 }), async (path, bytes) => {
          const r = await sched({ name: "random", method: "POST", path, ...json(Buffer.from(bytes)) });
          assert4xxJson(r, `random bytes to ${path}`);
        }),
        { numRuns: 150 },
      );
    });

    it("property: random JSON values as bodies never yield a 5xx", async () => {
      const routes = [
        `${API}/hosts`,
        `${API}/peers`,
        `${API}/preheat`,
        `${API}/tasks/${T}/peers/src/pieces`,
        `${API}/tasks/${T}/peers/src/failures`,
        `${API}/tasks/${T}/peers/child/result`,
      ];
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...routes), fc.json({ maxDepth: 4 }), async (path, body) => {
          const r = await sched({ name: "random", method: "POST", path, ...json(body) });
          assert4xxJson(r, `random JSON ${body.slice(0, 80)} to ${path}`);
        }),
        { numRuns: 150 },
      );
    });

    it("property: random task and peer IDs in paths never yield a 5xx", async () => {
      await fc.assert(
        fc.asyncProperty(
          anyId(200).filter((s) => !["src", "child", HOST, CHILD_HOST].includes(s)),
          fc.constantFrom("task", "peer", "host"),
          async (s, where) => {
            const id = encodeURIComponent(s);
            const path = where === "task" ? `${API}/tasks/${id}` : where === "peer" ? `${API}/tasks/${T}/peers/${id}/schedule?waitMs=0` : `${API}/hosts/${id}`;
            const r = await sched({ name: "random id", method: where === "host" ? "DELETE" : "GET", path });
            assert4xxJson(r, `random id ${JSON.stringify(s)} as ${where}`);
          },
        ),
        { numRuns: 150 },
      );
    });

    it("piece numbers beyond the task's piece count are refused", async () => {
      // Regression test (this was a bug): reportPieces() never checks a piece number against the task's piece count.
      // Expected: a report of piece 1,000,000 for a 1-piece task is refused (listed in
      // `rejected`, or a 4xx), so the peer's bitmap stays within the task. Actual: it is
      // accepted ({"rejected":[]}); the source's bitmap grows to ~125 KB (piece
      // 2,147,483,647 makes every later schedule/register reply ~350 MB and takes the
      // scheduler seconds per answer).
      const r = await sched({ name: "huge piece", method: "POST", path: `${API}/tasks/${T}/peers/src/pieces`, ...json({ pieces: [piece(1_000_000)] }) });
      const accepted = r.status === 200 && !(JSON.parse(r.text) as { rejected: { number: number }[] }).rejected.some((x) => x.number === 1_000_000);
      const status = JSON.parse((await sched({ name: "status", method: "GET", path: `${API}/tasks/${T}` })).text) as {
        task: { totalPieces: number };
        peers: { peerId: string; finishedPieces: number }[];
      };
      const src = status.peers.find((p) => p.peerId === "src")!;
      assert.equal(status.task.totalPieces, 1);
      assert.ok(!accepted, `the report was accepted: ${r.status} ${r.text}`);
      assert.equal(src.finishedPieces, 1, `src holds piece 0 only, of ${status.task.totalPieces}`);
    });

    it("a 128-hex task ID (an OCI sha512 blob) works on the task routes", async () => {
      // Regression test (this was a bug): fastify's default maxParamLength (100) is shorter than a valid 128-hex task
      // ID. Expected: GET /api/v1/tasks/<128 hex> of a registered sha512 blob task is 200
      // (and so are schedule/pieces/result for its peers). Actual: 414
      // FST_ERR_MAX_PARAM_LENGTH, so peers of sha512 blobs can register but never poll,
      // report pieces or report a result.
      const hex = "9".repeat(128);
      const url = `${origin.url}/v2/library/x/blobs/sha512:${hex}`;
      const reg = await sched({
        name: "register sha512",
        method: "POST",
        path: `${API}/peers`,
        ...json({ peerId: "sha512-peer", hostId: HOST, download: { url } }),
      });
      assert.equal(reg.status, 200, reg.text);
      const taskId = (JSON.parse(reg.text) as { taskId: string }).taskId;
      assert.equal(taskId, hex);
      const st = await sched({ name: "status sha512", method: "GET", path: `${API}/tasks/${taskId}` });
      assert.equal(st.status, 200, st.text.slice(0, 200));
      const sc = await sched({ name: "schedule sha512", method: "GET", path: `${API}/tasks/${taskId}/peers/sha512-peer/schedule?waitMs=0` });
      assert.equal(sc.status, 200, sc.text.slice(0, 200));
    });

    it("after all of it the scheduler still serves: healthy, and the known task is intact", async () => {
      assert.equal(cluster.scheduler.proc.exitCode, null);
      const h = await sched({ name: "health", method: "GET", path: "/healthy" });
      assert.equal(h.status, 200);
      assert.deepEqual(JSON.parse(h.text), { ok: true });
      const st = await sched({ name: "status", method: "GET", path: `${API}/tasks/${T}` });
      assert.equal(st.status, 200);
      const body = JSON.parse(st.text) as { task: { state: string; contentLength: number }; peers: { peerId: string; state: string }[] };
      assert.equal(body.task.state, "running");
      assert.equal(body.task.contentLength, 10);
      assert.deepEqual(body.peers.map((p) => [p.peerId, p.state]).sort(), [
        ["child", "running"],
        ["src", "back_to_source"],
      ]);
    });
  });

  describe("peer upload server", () => {
    const X = "e".repeat(64);
    const up = (method: string, path: string, opts: { body?: string | Buffer; headers?: Record<string, string> } = {}) =>
      raw(peer.uploadPort, method, path, { ...opts, headers: { ...cluster.uploadHeaders(), ...opts.headers } });

    it("serves the pieces and bytes of a task it holds (the routes under test are live)", async () => {
      const p0 = await up("GET", `/pieces/${K}/0`);
      assert.equal(p0.status, 200);
      assert.equal(p0.headers["x-kiln-piece-digest"], `sha256:${sha256(p0.body)}`);
      assert.deepEqual(p0.body, file.data.subarray(0, p0.body.length));
      const whole = await up("GET", `/tasks/${K}`);
      assert.equal(whole.status, 200);
      assert.equal(sha256(whole.body), file.sha256);
      const range = await up("GET", `/tasks/${K}`, { headers: { range: "bytes=10-19" } });
      assert.equal(range.status, 206);
      assert.deepEqual(range.body, file.data.subarray(10, 20));
      const head = await up("HEAD", `/tasks/${K}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers["content-length"], String(file.data.length));
    });

    it("unknown task: 404 JSON on every route", async () => {
      assert4xxJson(await up("GET", `/pieces/${X}/0`), "piece of unknown task", 404);
      assert4xxJson(await up("GET", `/tasks/${X}`), "unknown task", 404);
      assert4xxJson(await up("GET", `/tasks/${"f".repeat(128)}`), "unknown 128-hex task", 404);
      assert.equal((await up("HEAD", `/tasks/${X}`)).status, 404);
      assert4xxJson(await up("GET", "/nothing/here"), "unknown route", 404);
    });

    it("path tricks in the task ID: 400 JSON", async () => {
      const tricks = [
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        K.toUpperCase(),
        K.slice(1),
        `${K}0`,
        "a".repeat(5000),
        "%00",
        `${K}%2Fmeta.json`,
        `${K}%2F..%2F..%2Fetc%2Fpasswd`,
        "%20",
      ];
      const failures: string[] = [];
      for (const t of tricks) {
        for (const path of [`/pieces/${t}/0`, `/tasks/${t}`]) {
          try {
            assert4xxJson(await up("GET", path), `GET ${path.slice(0, 80)}`, 400);
          } catch (e) {
            failures.push((e as Error).message.split("\n")[0]!);
          }
        }
      }
      assert.deepEqual(failures, []);
    });

    it("malformed percent-encoding in the task ID: 400 JSON, not a 500", async () => {
      // Regression test (this was a bug): upload-server.ts calls decodeURIComponent() on the task segment outside any
      // guard; a URIError becomes a non-KilnError and is answered 500 "internal error"
      // (and logged as an unhandled error). Expected: 400 with a JSON message.
      for (const path of ["/pieces/%ZZ/0", "/tasks/%ZZ", `/tasks/${K}%E0%A4%A`]) {
        const r = await up("GET", path);
        assert4xxJson(r, `GET ${path}`, 400);
      }
    });

    it("bad piece numbers: 400 JSON; a valid number the peer does not have: 404 JSON", async () => {
      for (const n of ["-1", "abc", "1.5", "1e3", "0x1", "1234567890", "%20", "0%2F..%2F..", "+1", "%D9%A3"]) {
        assert4xxJson(await up("GET", `/pieces/${K}/${n}`), `piece ${n}`, 400);
      }
      assert4xxJson(await up("GET", `/pieces/${K}/99999`), "piece 99999", 404);
      assert4xxJson(await up("GET", `/pieces/${K}/2`), "piece 2 of a 2-piece task", 404);
    });

    it("never serves a file outside its tasks, however the path is spelled", async () => {
      const paths = [
        "/pieces/../../etc/passwd/0",
        "/pieces/../../../../../../etc/passwd",
        "/tasks/../../../../etc/passwd",
        `/tasks/${K}/../../../../etc/passwd`,
        `/pieces/${K}/../../meta.json`,
        `/pieces/${K}/0/../../../../etc/passwd`,
        "/../../../../etc/passwd",
        "/tasks/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/tasks/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/tasks/~root",
      ];
      for (const p of paths) {
        const r = await up("GET", p);
        assert4xxJson(r, `GET ${p}`);
        assert.doesNotMatch(r.text, /root:|"complete"|pieceLength/, `${p} leaked a file`);
      }
    });

    it("wrong method: 405 JSON", async () => {
      for (const [m, p] of [
        ["POST", `/pieces/${K}/0`],
        ["PUT", `/tasks/${K}`],
        ["DELETE", `/tasks/${K}`],
        ["DELETE", `/tasks/${X}`],
        ["GET", "/api/v1/prefetch"],
        ["PUT", "/api/v1/prefetch"],
      ] as const) {
        assert4xxJson(await up(m, p), `${m} ${p}`, 405);
      }
    });

    it("prefetch without the control token the peer announced: 401 JSON, nothing fetched", async () => {
      const body = JSON.stringify({ taskId: taskIdFor({ url: `${origin.url}/prefetch-never` }), download: { url: `${origin.url}/prefetch-never` } });
      for (const authorization of [
        undefined,
        "",
        "Bearer",
        `Bearer ${CONTROL_TOKEN}x`,
        `Bearer ${CONTROL_TOKEN.slice(1)}`,
        CONTROL_TOKEN,
        `Basic ${CONTROL_TOKEN}`,
      ]) {
        const r = await up("POST", "/api/v1/prefetch", {
          body,
          headers: { "content-type": "application/json", ...(authorization === undefined ? {} : { authorization }) },
        });
        const e = assert4xxJson(r, `prefetch with authorization ${JSON.stringify(authorization)}`, 401);
        assert.match(e.message, /control token/);
      }
      assert.ok(!origin.requests.some((r) => r.path === "/prefetch-never"), "nothing was fetched");
    });

    it("prefetch: malformed JSON, invalid bodies and a taskId that does not match the download are 400 JSON", async () => {
      const post = (body: string | Buffer) =>
        up("POST", "/api/v1/prefetch", { body, headers: { "content-type": "application/json", authorization: `Bearer ${CONTROL_TOKEN}` } });
      const download = { url: `${origin.url}/prefetch-never` };
      const rightId = taskIdFor({ url: download.url });
      const bad: [string, string][] = [
        ['{"taskId":', "malformed JSON"],
        ["", "empty body"],
        ["null", "null"],
        ["[]", "array"],
        [JSON.stringify({}), "missing fields"],
        [JSON.stringify({ taskId: rightId }), "missing download"],
        [JSON.stringify({ download }), "missing taskId"],
        [JSON.stringify({ taskId: "../../etc/passwd", download }), "taskId with a path"],
        [JSON.stringify({ taskId: rightId.toUpperCase(), download }), "uppercase taskId"],
        [JSON.stringify({ taskId: rightId, download: { url: "nope" } }), "bad url"],
        [JSON.stringify({ taskId: rightId, download: { ...download, pieceLength: 5 } }), "piece length too small"],
        [JSON.stringify({ taskId: rightId, download: { ...download, headers: [1] } }), "headers not an object"],
      ];
      for (const [body, what] of bad) assert4xxJson(await post(body), `prefetch: ${what}`, 400);
      const mismatch = assert4xxJson(await post(JSON.stringify({ taskId: X, download })), "prefetch: taskId not matching the download", 400);
      assert.match(mismatch.message, /does not match/);
      const tooBig = await post(JSON.stringify({ taskId: rightId, download: { ...download, headers: { x: "y".repeat(2 * MiB) } } }));
      assert4xxJson(tooBig, "prefetch: body over 1 MiB", 413);
      assert.ok(!origin.requests.some((r) => r.path === "/prefetch-never"), "nothing was fetched for a refused prefetch");
    });

    it("a body whose JSON error quotes half an emoji: 400 JSON, and the peer lives", async () => {
      // Regression test (this was a bug): V8's JSON.parse message cuts its excerpt mid surrogate
      // pair, and encoding that message into the x-kiln-error header threw and killed the peer.
      const headers = { "content-type": "application/json", authorization: `Bearer ${CONTROL_TOKEN}` };
      for (const body of [`x${"😀".repeat(20)}`, `[1,${"😀".repeat(9)}a`]) {
        const e = assert4xxJson(await up("POST", "/api/v1/prefetch", { body, headers }), `prefetch ${body.slice(0, 8)}`, 400);
        assert.match(e.message, /not valid JSON|Unexpected token/);
      }
      assert.equal((await up("GET", "/healthy")).status, 200);
    });

    it("property: random bytes to prefetch never yield a 5xx", async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
          const r = await up("POST", "/api/v1/prefetch", {
            body: Buffer.from(bytes),
            headers: { "content-type": "application/json", authorization: `Bearer ${CONTROL_TOKEN}` },
          });
          assert4xxJson(r, "random prefetch body", 400);
        }),
        { numRuns: 100 },
      );
    });

    it("property: random task IDs and piece numbers never yield a 5xx or a byte", async () => {
      const seg = anyId(100).map(encodeURIComponent);
      await fc.assert(
        fc.asyncProperty(seg, seg, fc.boolean(), async (t, n, pieceRoute) => {
          const path = pieceRoute ? `/pieces/${t}/${n}` : `/tasks/${t}`;
          assert4xxJson(await up("GET", path), `GET ${path}`);
        }),
        { numRuns: 150 },
      );
    });

    it("after all of it the upload server still serves", async () => {
      assert.equal(peer.proc.proc.exitCode, null);
      assert.equal((await up("GET", "/healthy")).status, 200);
      assert.equal(sha256((await up("GET", `/tasks/${K}`)).body), file.sha256);
    });
  });

  describe("peer proxy", () => {
    const proxyPort = () => Number(new URL(peer.proxyUrl).port);
    const px = (method: string, target: string, headers: Record<string, string> = {}) => raw(proxyPort(), method, target, { headers });

    it("a non-absolute URL: 400 JSON", async () => {
      for (const t of ["/held.bin", "/", "*", "/pieces/x/0", "/v2x/library"]) {
        const r = await px("GET", t, { "x-dragonfly-use-p2p": "true" });
        const body = assert4xxJson(r, `GET ${t}`, 400);
        assert.match(body.message, /absolute URL/);
      }
    });

    it("a registry-mirror request (/v2/...) that names no usable registry: 4xx JSON", async () => {
      const blob = `/v2/library/x/blobs/sha256:${"1".repeat(64)}`;
      assert4xxJson(await px("GET", blob), `GET ${blob} without a registry`);
      assert4xxJson(await px("POST", blob, { "x-dragonfly-registry": origin.url }), "POST to a pull-only mirror", 405);
    });

    it("an X-Dragonfly-Registry that is not an http(s) registry: 400 JSON naming the header, nothing contacted", async () => {
      const before = origin.requests.length;
      const blob = `/v2/library/x/blobs/sha256:${"1".repeat(64)}`;
      for (const registry of ["ftp://files.example", "files.example/path"]) {
        const body = assert4xxJson(await px("GET", blob, { "x-dragonfly-registry": registry }), `X-Dragonfly-Registry: ${registry}`, 400);
        assert.match(body.message, new RegExp(`invalid registry "${registry.replace(/[./]/g, "\\$&")}" in the X-Dragonfly-Registry header`));
      }
      assert.equal(origin.requests.length, before);
    });

    it("an absolute URL of another scheme (ftp://): 400 JSON saying only http(s) is fetched", async () => {
      const body = assert4xxJson(await px("GET", "ftp://files.example/x.bin", { "x-dragonfly-use-p2p": "true" }), "GET ftp://", 400);
      assert.match(body.message, /http:\/\/ and https:\/\/ URLs only, not ftp:\/\//);
    });

    it("a host the proxy does not allow, without an explicit local P2P download: 403 JSON, and the origin is not contacted", async () => {
      const before = origin.requests.length;
      const blob = `${origin.url}/v2/library/x/blobs/sha256:${"1".repeat(64)}`;
      for (const [t, h] of [
        [`${origin.url}/held.bin`, {}],
        [`${origin.url}/held.bin`, { "x-dragonfly-use-p2p": "false" }],
        [`${origin.url}/held.bin`, { "x-dragonfly-use-p2p": "yes" }],
        [`${origin.url}/v2/library/x/manifests/latest`, {}],
        [blob, { "x-dragonfly-use-p2p": "false" }],
      ] as [string, Record<string, string>][]) {
        const body = assert4xxJson(await px("GET", t, h), `GET ${t} ${JSON.stringify(h)}`, 403);
        assert.match(body.message, /^proxy refused GET http:\/\/127\.0\.0\.1:\d+\/.*: host 127\.0\.0\.1:\d+ is not on this proxy's allowed hosts/);
      }
      assert.equal(origin.requests.length, before);
    });

    it("methods other than GET/HEAD and bad X-Dragonfly headers: 4xx JSON, origin not contacted", async () => {
      const before = origin.requests.length;
      // Only GETs are downloads; anything else is forwarding, which needs an allowed host.
      assert4xxJson(await px("POST", `${origin.url}/held.bin`, { "x-dragonfly-use-p2p": "true" }), "POST", 403);
      assert4xxJson(await px("DELETE", `${origin.url}/held.bin`, { "x-dragonfly-use-p2p": "true" }), "DELETE", 403);
      for (const v of ["abc", "1", "-4194304", String(2048 * MiB), "4194304.5"]) {
        const r = await px("GET", `${origin.url}/held.bin`, { "x-dragonfly-use-p2p": "true", "x-dragonfly-piece-length": v });
        assert4xxJson(r, `piece length header ${v}`, 400);
      }
      assert.equal(origin.requests.length, before);
    });

    it("an absolute URL that cannot be parsed: 400 JSON, not a 500", async () => {
      // Regression test (this was a bug): the proxy (now peer/proxy/download-spec.ts) builds the DownloadSpec with DownloadSpec.parse(); a target
      // that passes the /^https?:\/\// check but is not a valid URL makes zod throw a
      // ZodError, which is answered 500 "internal error". Expected: 400 with a message
      // saying the URL is invalid.
      for (const t of ["http://[::1/x", "http://a%zz/x", "http://"]) {
        const r = await px("GET", t, { "x-dragonfly-use-p2p": "true" });
        assert4xxJson(r, `GET ${t}`, 400);
      }
    });

    it("after all of it the proxy still serves", async () => {
      const r = await px("GET", fileUrl, { "x-dragonfly-use-p2p": "true" });
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), file.sha256);
      assert.equal(r.headers["x-dragonfly-task-id"], K);
      assert.equal((await px("GET", "/healthy")).status, 200);
    });
  });
});
