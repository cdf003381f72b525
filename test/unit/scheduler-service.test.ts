/**
 * The scheduler's decisions, driven in-process through SchedulerService: who goes
 * back to source, who gets which parents, trust, keepalive loss and task failure.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { createHash } from "node:crypto";
import { createLogger } from "../../src/common/logger.js";
import { KilnError } from "../../src/common/errors.js";
import { DownloadSpec } from "../../src/api/common.js";
import type { HostAnnounce, PieceInfo, ScheduleReply } from "../../src/api/scheduler.js";
import { SchedulerService, defaultSchedulerOptions, type SchedulerOptions } from "../../src/scheduler/service.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { hostInfo as baseHostInfo } from "../helpers/host.js";

const MiB = 1024 * 1024;
const PL = 4 * MiB;
const LEN = 3 * PL;
const log = createLogger("scheduler-test", "silent");

const hostInfo = (id: string, o: Partial<HostAnnounce> = {}) => baseHostInfo(id, { controlToken: tokenOf(id), ...o });

/** Each test host's control token: the one its prefetch triggers must carry. */
function tokenOf(hostId: string): string {
  return createHash("sha256").update(hostId).digest("base64url");
}

function spec(url: string) {
  return DownloadSpec.parse({ url });
}

function piece(n: number, salt = ""): PieceInfo {
  return { number: n, digest: `sha256:${createHash("sha256").update(`piece-${n}${salt}`).digest("hex")}`, length: PL };
}

function service(o: Partial<SchedulerOptions> = {}): SchedulerService {
  return new SchedulerService(log, { ...defaultSchedulerOptions, scheduleWaitMs: 0, ...o });
}

/** One schedule answer right now (no long poll). */
function now(s: SchedulerService, taskId: string, peerId: string, count?: number): Promise<ScheduleReply> {
  return s.schedule(taskId, peerId, -1, count, 0);
}

const parentIds = (r: ScheduleReply) => r.parents.map((p) => p.peerId);

function isKiln(code: KilnError["code"]) {
  return (e: unknown) => e instanceof KilnError && e.code === code;
}

let url = 0;
const nextUrl = () => `http://origin.example/file-${++url}.bin`;

/** Peer `src` on host `hostId` becomes the origin fetcher of a fresh task and reports all pieces. */
function sourcedTask(s: SchedulerService, hostId = "src-host", peerId = "src") {
  s.announceHost(hostInfo(hostId));
  const r = s.register({ peerId, hostId, download: spec(nextUrl()) });
  assert.equal(r.action, "back_to_source");
  s.reportPieces(r.taskId, peerId, { contentLength: LEN, pieceLength: PL, pieces: [piece(0), piece(1), piece(2)] });
  return r.taskId;
}

/** A trivial stand-in for a seed peer's upload port: records prefetch triggers (with the token they carried), answers 202. */
let seedEndpoint: { server: http.Server; port: number; calls: { taskId: string; url: string }[]; tokens: string[] };
let closedPort: number;

before(async () => {
  const calls: { taskId: string; url: string }[] = [];
  const tokens: string[] = [];
  const server = http.createServer((req, res) => {
    tokens.push(String(req.headers.authorization ?? ""));
    let body = "";
    req.on("data", (c: Buffer) => (body += c));
    req.on("end", () => {
      const j = JSON.parse(body) as { taskId: string; download: { url: string } };
      calls.push({ taskId: j.taskId, url: j.download.url });
      res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ accepted: true, taskId: j.taskId }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  seedEndpoint = { server, port: (server.address() as AddressInfo).port, calls, tokens };
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
});

after(async () => {
  seedEndpoint.server.closeAllConnections();
  await new Promise((r) => seedEndpoint.server.close(r));
});

describe("registration and the origin fetcher", () => {
  it("the first peer of a task, with no seed host around, goes back to source", () => {
    const s = service();
    s.announceHost(hostInfo("h1"));
    const u = nextUrl();
    const r = s.register({ peerId: "p1", hostId: "h1", download: spec(u) });
    assert.equal(r.taskId, taskIdFor(spec(u)));
    assert.equal(r.action, "back_to_source");
    assert.equal(r.task.state, "running");
    assert.deepEqual(r.parents, []);
    const st = s.taskStatus(r.taskId);
    assert.equal(st.peers[0]!.state, "back_to_source");
  });

  it("a second peer while the first fetches from the origin is a child of it", async () => {
    const s = service();
    const taskId = sourcedTask(s);
    s.announceHost(hostInfo("h2"));
    const r = s.register({ peerId: "c1", hostId: "h2", download: spec(s.tasks.get(taskId)!.spec.url) });
    assert.equal(r.taskId, taskId);
    assert.equal(r.action, "p2p");
    assert.deepEqual(parentIds(r), ["src"]);
    assert.deepEqual(r.pieces.map((p) => p.number).sort(), [0, 1, 2]);
    assert.equal(r.task.contentLength, LEN);
    assert.equal(r.task.totalPieces, 3);
  });

  it("unknown host and duplicate peer are refused", () => {
    const s = service();
    assert.throws(() => s.register({ peerId: "p", hostId: "nobody", download: spec(nextUrl()) }), isKiln("NOT_FOUND"));
    s.announceHost(hostInfo("h"));
    const u = nextUrl();
    s.register({ peerId: "p", hostId: "h", download: spec(u) });
    assert.throws(() => s.register({ peerId: "p", hostId: "h", download: spec(u) }), isKiln("CONFLICT"));
  });

  it("a seed host is preferred: it is triggered to fetch, the peer waits, the seed becomes the source", async () => {
    const s = service({ seedTriggerWaitMs: 60_000 });
    s.announceHost(hostInfo("seed-host", { isSeed: true, uploadPort: seedEndpoint.port }));
    s.announceHost(hostInfo("h1"));
    s.announceHost(hostInfo("h2"));
    const u = nextUrl();
    const before = seedEndpoint.calls.length;
    const r1 = s.register({ peerId: "p1", hostId: "h1", download: spec(u) });
    assert.equal(r1.action, "wait", "the peer does not go to the origin itself");
    const r2 = s.register({ peerId: "p2", hostId: "h2", download: spec(u) });
    assert.notEqual(r2.action, "back_to_source", "nor does a second one (it may be handed p1 to pipeline from)");
    assert.equal(s.taskStatus(r1.taskId).peers.filter((p) => p.state === "back_to_source").length, 0);
    // The trigger reaches the seed's upload port.
    for (let i = 0; i < 100 && seedEndpoint.calls.length === before; i++) await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(seedEndpoint.calls.slice(before), [{ taskId: r1.taskId, url: u }]);
    assert.deepEqual(seedEndpoint.tokens.slice(before), [`Bearer ${tokenOf("seed-host")}`], "the trigger carries the token the seed host announced");
    // A peer still waiting for the triggered seed is not rescued to the origin.
    assert.notEqual((await now(s, r1.taskId, "p1")).action, "back_to_source");
    // The seed registers and fetches from the origin.
    const seedReply = s.register({ peerId: "seed", hostId: "seed-host", download: spec(u) });
    assert.equal(seedReply.action, "back_to_source");
    s.reportPieces(r1.taskId, "seed", { contentLength: LEN, pieceLength: PL, pieces: [piece(0)] });
    const r = await now(s, r1.taskId, "p1");
    assert.equal(r.action, "p2p");
    assert.equal(parentIds(r)[0], "seed", "the seed, holding a piece, is the best parent");
    assert.equal(r.parents[0]!.isSeed, true);
  });

  it("when the triggered seed cannot be reached, a waiting peer is made the origin fetcher", async () => {
    const s = service({ seedTriggerWaitMs: 60_000 });
    s.announceHost(hostInfo("dead-seed", { isSeed: true, uploadPort: closedPort }));
    s.announceHost(hostInfo("h1"));
    const r1 = s.register({ peerId: "p1", hostId: "h1", download: spec(nextUrl()) });
    assert.equal(r1.action, "wait");
    // Long poll: answered when the failed trigger is noticed.
    const r = await s.schedule(r1.taskId, "p1", r1.version, undefined, 10_000);
    assert.equal(r.action, "back_to_source");
  });

  it("when the triggered seed's host is dropped before it registers, a waiting peer becomes the origin fetcher at once", async () => {
    // Regression test (this was a bug): dropHost() only removes the dropped host's peers; it leaves task.seedTrigger
    // pointing at the dead seed host and touches nothing. Expected: the peer waiting for
    // that seed is rescheduled as the origin fetcher as soon as the seed host is dropped
    // (keepalive lapse or DELETE /hosts/<id>). Actual: rescueOrphan() still sees an
    // unexpired trigger, so the peer keeps getting "wait"/"p2p" with nobody fetching until
    // seedTriggerWaitMs (10 s by default) has passed.
    const s = service({ seedTriggerWaitMs: 60_000 });
    s.announceHost(hostInfo("seed-host", { isSeed: true, uploadPort: seedEndpoint.port }));
    s.announceHost(hostInfo("h1"));
    const before = seedEndpoint.calls.length;
    const r1 = s.register({ peerId: "p1", hostId: "h1", download: spec(nextUrl()) });
    assert.equal(r1.action, "wait");
    for (let i = 0; i < 100 && seedEndpoint.calls.length === before; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(seedEndpoint.calls.length, before + 1, "the seed was triggered");
    s.leaveHost("seed-host", "seed host went away");
    const r = await now(s, r1.taskId, "p1");
    assert.equal(r.action, "back_to_source", "nobody is fetching the task any more");
  });
});

describe("piece reports and trust", () => {
  it("a peer that is not the origin fetcher cannot report pieces the task has no digest for", () => {
    const s = service();
    s.announceHost(hostInfo("src-host"));
    const r = s.register({ peerId: "src", hostId: "src-host", download: spec(nextUrl()) });
    s.reportPieces(r.taskId, "src", { contentLength: LEN, pieceLength: PL, pieces: [piece(0)] });
    s.announceHost(hostInfo("h2"));
    s.register({ peerId: "c", hostId: "h2", download: spec(s.tasks.get(r.taskId)!.spec.url) });
    const reply = s.reportPieces(r.taskId, "c", { pieces: [piece(0), piece(1), piece(2)] });
    assert.deepEqual(
      reply.rejected.map((x) => x.number),
      [1, 2],
    );
    assert.match(reply.rejected[0]!.reason, /no digest known/);
    const c = s.taskStatus(r.taskId).peers.find((p) => p.peerId === "c")!;
    assert.equal(c.finishedPieces, 1, "only the piece with a known digest counts");
    // Nor may it set the content or piece length.
    assert.throws(() => s.reportPieces(r.taskId, "c", { contentLength: 1, pieces: [] }), isKiln("CONFLICT"));
    assert.throws(() => s.reportPieces(r.taskId, "c", { pieceLength: 8 * MiB, pieces: [] }), isKiln("CONFLICT"));
    assert.equal(s.taskStatus(r.taskId).task.contentLength, LEN);
  });

  it("the origin fetcher cannot change the layout once set", () => {
    const s = service();
    const taskId = sourcedTask(s);
    assert.throws(() => s.reportPieces(taskId, "src", { pieceLength: 8 * MiB, pieces: [] }), isKiln("CONFLICT"));
    assert.throws(() => s.reportPieces(taskId, "src", { contentLength: LEN + 1, pieces: [] }), isKiln("CONFLICT"));
  });

  it("reports for an unknown task or peer are NOT_FOUND", () => {
    const s = service();
    const taskId = sourcedTask(s);
    assert.throws(() => s.reportPieces("a".repeat(64), "src", { pieces: [] }), isKiln("NOT_FOUND"));
    assert.throws(() => s.reportPieces(taskId, "ghost", { pieces: [] }), isKiln("NOT_FOUND"));
    assert.throws(() => s.reportFailure(taskId, "ghost", { parentId: "src", pieceNumber: 0, kind: "timeout", message: "" }), isKiln("NOT_FOUND"));
    assert.throws(() => s.reportResult(taskId, "ghost", { state: "succeeded", contentLength: LEN }), isKiln("NOT_FOUND"));
    assert.throws(() => s.leaveTask(taskId, "ghost"), isKiln("NOT_FOUND"));
    assert.throws(() => s.taskStatus("b".repeat(64)), isKiln("NOT_FOUND"));
  });

  it("a peer reporting a digest that conflicts with the canonical one is never offered as a parent", async () => {
    const s = service();
    const taskId = sourcedTask(s);
    const u = s.tasks.get(taskId)!.spec.url;
    for (const h of ["h-liar", "h-honest", "h-child"]) s.announceHost(hostInfo(h));
    s.register({ peerId: "liar", hostId: "h-liar", download: spec(u) });
    s.register({ peerId: "honest", hostId: "h-honest", download: spec(u) });
    const bad = s.reportPieces(taskId, "liar", { pieces: [piece(0, "tampered"), piece(1)] });
    assert.deepEqual(
      bad.rejected.map((x) => x.number),
      [0],
    );
    assert.match(bad.rejected[0]!.reason, /differs/);
    s.reportPieces(taskId, "honest", { pieces: [piece(0), piece(1)] });
    s.register({ peerId: "child", hostId: "h-child", download: spec(u) });
    const r = await now(s, taskId, "child", 64);
    assert.ok(parentIds(r).includes("honest"));
    assert.ok(parentIds(r).includes("src"));
    assert.ok(!parentIds(r).includes("liar"), "the liar is not offered");
    // Not even after it reports correct digests later.
    s.reportPieces(taskId, "liar", { pieces: [piece(0), piece(2)] });
    assert.ok(!parentIds(await now(s, taskId, "child", 64)).includes("liar"));
    // A wrong length with the right digest is just as wrong.
    s.announceHost(hostInfo("h-short"));
    s.register({ peerId: "short", hostId: "h-short", download: spec(u) });
    const short = s.reportPieces(taskId, "short", { pieces: [{ ...piece(1), length: PL - 1 }] });
    assert.deepEqual(
      short.rejected.map((x) => x.number),
      [1],
    );
    assert.ok(!parentIds(await now(s, taskId, "child", 64)).includes("short"));
  });

  it("a digest_mismatch report makes the parent untrusted for everyone; other failures only for the reporter", async () => {
    const s = service();
    const taskId = sourcedTask(s);
    const u = s.tasks.get(taskId)!.spec.url;
    for (const h of ["h-a", "h-b", "h-c1", "h-c2", "h-c3"]) s.announceHost(hostInfo(h));
    for (const [p, h] of [
      ["a", "h-a"],
      ["b", "h-b"],
    ] as const) {
      s.register({ peerId: p, hostId: h, download: spec(u) });
      s.reportPieces(taskId, p, { pieces: [piece(0), piece(1), piece(2)] });
    }
    for (const [p, h] of [
      ["c1", "h-c1"],
      ["c2", "h-c2"],
      ["c3", "h-c3"],
    ] as const)
      s.register({ peerId: p, hostId: h, download: spec(u) });

    s.reportFailure(taskId, "c1", { parentId: "a", pieceNumber: 1, kind: "digest_mismatch", message: "piece 1 digest differs" });
    s.reportFailure(taskId, "c2", { parentId: "b", pieceNumber: 2, kind: "http_error", message: "answered 404" });
    s.reportFailure(taskId, "c3", { parentId: "b", pieceNumber: 2, kind: "timeout", message: "stalled" });

    const c1 = parentIds(await now(s, taskId, "c1", 64));
    const c2 = parentIds(await now(s, taskId, "c2", 64));
    const c3 = parentIds(await now(s, taskId, "c3", 64));
    assert.ok(!c1.includes("a") && !c2.includes("a") && !c3.includes("a"), "a served a corrupt piece: offered to nobody");
    assert.ok(!c2.includes("b"), "b refused c2 a piece it announced: not offered to c2 again");
    assert.ok(c1.includes("b") && c3.includes("b"), "b is still offered to the others, c3 included (a stall only counts against its score)");
    assert.ok(c3.includes("src"));
  });

  it("a peer is never offered itself or a peer on its own host", async () => {
    const s = service();
    const taskId = sourcedTask(s);
    const u = s.tasks.get(taskId)!.spec.url;
    s.register({ peerId: "same-host", hostId: "src-host", download: spec(u) });
    const r = await now(s, taskId, "same-host", 64);
    assert.deepEqual(parentIds(r), []);
    assert.equal(r.action, "wait");
  });
});

describe("parent scoring", () => {
  /** Source on its own host; parents `a` and `b` on hosts with the given extras; a child. */
  function swarm(o: { a?: Partial<HostAnnounce>; b?: Partial<HostAnnounce>; child?: Partial<HostAnnounce>; aPieces: number[]; bPieces: number[] }) {
    const s = service();
    const taskId = sourcedTask(s);
    const u = s.tasks.get(taskId)!.spec.url;
    s.announceHost(hostInfo("h-a", o.a));
    s.announceHost(hostInfo("h-b", o.b));
    s.announceHost(hostInfo("h-child", o.child));
    s.register({ peerId: "a", hostId: "h-a", download: spec(u) });
    s.register({ peerId: "b", hostId: "h-b", download: spec(u) });
    s.reportPieces(taskId, "a", { pieces: o.aPieces.map((n) => piece(n)) });
    s.reportPieces(taskId, "b", { pieces: o.bPieces.map((n) => piece(n)) });
    s.register({ peerId: "child", hostId: "h-child", download: spec(u) });
    return { s, taskId, u };
  }
  const order = (r: ScheduleReply) => {
    const ids = parentIds(r);
    assert.ok(ids.includes("a") && ids.includes("b"), `both offered: ${ids.join(",")}`);
    return ids.indexOf("a") < ids.indexOf("b") ? "a first" : "b first";
  };

  it("more pieces held ranks higher", async () => {
    const { s, taskId } = swarm({ aPieces: [0], bPieces: [0, 1, 2] });
    assert.equal(order(await now(s, taskId, "child", 64)), "b first");
    const { s: s2, taskId: t2 } = swarm({ aPieces: [0, 1, 2], bPieces: [2] });
    assert.equal(order(await now(s2, t2, "child", 64)), "a first");
  });

  it("the same IDC ranks higher, other things equal", async () => {
    const { s, taskId } = swarm({ a: { idc: "dc-1" }, b: { idc: "dc-2" }, child: { idc: "dc-2" }, aPieces: [0, 1], bPieces: [0, 1] });
    assert.equal(order(await now(s, taskId, "child", 64)), "b first");
    const { s: s2, taskId: t2 } = swarm({ a: { idc: "dc-2" }, b: { idc: "dc-1" }, child: { idc: "dc-2" }, aPieces: [0, 1], bPieces: [0, 1] });
    assert.equal(order(await now(s2, t2, "child", 64)), "a first");
  });

  it("recent failures as a parent rank lower", async () => {
    const { s, taskId, u } = swarm({ aPieces: [0, 1], bPieces: [0, 1] });
    // Two other children could not fetch from a (failures, not corruption).
    for (const id of ["x1", "x2"]) {
      s.announceHost(hostInfo(`h-${id}`));
      s.register({ peerId: id, hostId: `h-${id}`, download: spec(u) });
      s.reportFailure(taskId, id, { parentId: "a", pieceNumber: 0, kind: "timeout", message: "stalled" });
    }
    assert.equal(order(await now(s, taskId, "child", 64)), "b first");
  });

  it("more free upload slots rank higher, other things equal", async () => {
    const { s, taskId } = swarm({ a: { freeUploadSlots: 10 }, b: { freeUploadSlots: 0 }, aPieces: [0], bPieces: [0] });
    assert.equal(order(await now(s, taskId, "child", 64)), "a first");
  });

  it("the count asked for caps the parents handed out", async () => {
    const { s, taskId } = swarm({ aPieces: [0, 1, 2], bPieces: [0] });
    assert.equal((await now(s, taskId, "child", 1)).parents.length, 1);
    assert.equal((await now(s, taskId, "child", 2)).parents.length, 2);
    assert.equal((await now(s, taskId, "child", 64)).parents.length, 3);
  });
});

describe("the scheduler out of the per-piece loop", () => {
  /** An origin fetcher with pieces 0..7 of 16 reported, and `children` peers on their own hosts. */
  function swarm(children: number) {
    const s = service();
    s.announceHost(hostInfo("seed-host", { isSeed: true }));
    const u = nextUrl();
    const src = s.register({ peerId: "seed", hostId: "seed-host", download: spec(u) });
    assert.equal(src.action, "back_to_source");
    const ids = Array.from({ length: children }, (_, i) => `c${i + 1}`);
    for (const id of ids) {
      s.announceHost(hostInfo(`h-${id}`));
      s.register({ peerId: id, hostId: `h-${id}`, download: spec(u) });
    }
    s.reportPieces(src.taskId, "seed", { contentLength: 16 * PL, pieceLength: PL, pieces: Array.from({ length: 8 }, (_, n) => piece(n)) });
    return { s, taskId: src.taskId, ids, u };
  }

  it("a child's piece report wakes no long poll; a new digest from the origin fetcher does", async () => {
    const { s, taskId } = swarm(3);
    const seen = (await now(s, taskId, "c1")).version;
    let answered = false;
    const poll = s.schedule(taskId, "c1", seen, 0, 2_000).then((r) => {
      answered = true;
      return r;
    });
    s.reportPieces(taskId, "c2", { pieces: [piece(0), piece(1)] });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered, false, "other children hear of c2's pieces through its have feed, not through the scheduler");
    s.reportPieces(taskId, "seed", { pieces: [piece(8)] });
    const r = await poll;
    assert.deepEqual(
      r.pieces.map((p) => p.number),
      [8],
      "the poll answers with the new digest only",
    );
  });

  it("a peer joining answers only the polls that ask for parents, with it among them; a failed peer answers every poll", async () => {
    const { s, taskId, u, ids } = swarm(3);
    const seen = (await now(s, taskId, "c1")).version;
    const poll = (peerId: string, count: number) => {
      let answered = false;
      const reply = s.schedule(taskId, peerId, seen, count, 60_000).then((r) => {
        answered = true;
        return r;
      });
      return { reply, answered: () => answered };
    };
    const full = poll("c1", 0);
    const wanting = poll("c2", 64);
    s.announceHost(hostInfo("h-late"));
    s.register({ peerId: "late", hostId: "h-late", download: spec(u) });
    const woken = await Promise.race([wanting.reply, new Promise<undefined>((r) => setTimeout(r, 3_000))]);
    assert.ok(woken, "the poll asking for parents is answered when a peer joins");
    assert.ok(parentIds(woken).includes("late"), "with the new peer among its parents");
    assert.equal(woken.version, seen, "a join moves no version: the next poll waits as before");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(full.answered(), false, "a peer with all the parents it wants is not answered because another joined");
    s.reportResult(taskId, ids[2]!, { state: "failed", error: { code: "DISK_FULL", status: 503, message: "no space left" } });
    const all = await Promise.race([full.reply, new Promise<undefined>((r) => setTimeout(r, 3_000))]);
    assert.ok(all, "a failed peer answers every poll (the task may have lost what it needed)");
  });

  it("answers carry candidate parents without piece bitmaps, and none when the child asks for none (count 0)", async () => {
    const { s, taskId } = swarm(3);
    const withParents = await now(s, taskId, "c1", 4);
    assert.ok(withParents.parents.length > 0);
    for (const p of withParents.parents) assert.deepEqual(Object.keys(p).sort(), ["hostId", "ip", "isSeed", "peerId", "uploadPort"]);
    const digestsOnly = await now(s, taskId, "c1", 0);
    assert.deepEqual(digestsOnly.parents, []);
    assert.equal(digestsOnly.action, "p2p");
    assert.equal(digestsOnly.pieces.length, 8);
  });
});

describe("preheat", () => {
  const waitCalls = async (n: number) => {
    for (let i = 0; i < 200 && seedEndpoint.calls.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };

  it("concurrent_peer_count: only that many hosts fetch at once; the next is triggered as one finishes or fails", async () => {
    const s = service();
    const ids = ["pa", "pb", "pc"];
    for (const id of ids) s.announceHost(hostInfo(id, { uploadPort: seedEndpoint.port }));
    const u = nextUrl();
    const before = seedEndpoint.calls.length;
    const reply = await s.preheat({ download: spec(u), scope: "all_peers", concurrentPeerCount: 1 });
    assert.deepEqual(
      reply.hosts.map((h) => [h.hostId, h.accepted]),
      ids.map((id) => [id, true]),
      "every host is part of the preheat",
    );
    await waitCalls(before + 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seedEndpoint.tokens.slice(before), [`Bearer ${tokenOf("pa")}`], "only the first host was asked");

    // pa fetches and succeeds: pb is asked.
    const a = s.register({ peerId: "a", hostId: "pa", download: spec(u) });
    s.reportPieces(a.taskId, "a", { contentLength: PL, pieceLength: PL, pieces: [piece(0)] });
    s.reportResult(a.taskId, "a", { state: "succeeded", contentLength: PL });
    await waitCalls(before + 2);
    assert.deepEqual(seedEndpoint.tokens.slice(before), [`Bearer ${tokenOf("pa")}`, `Bearer ${tokenOf("pb")}`]);

    // pb fails (its disk, not the origin): pc is asked.
    s.register({ peerId: "b", hostId: "pb", download: spec(u) });
    s.reportResult(a.taskId, "b", { state: "failed", error: { code: "DISK_FULL", status: 503, message: "no space left" } });
    await waitCalls(before + 3);
    assert.deepEqual(
      seedEndpoint.tokens.slice(before),
      ["pa", "pb", "pc"].map((h) => `Bearer ${tokenOf(h)}`),
    );
  });

  it("without concurrent_peer_count every host is asked at once", async () => {
    const s = service();
    for (const id of ["qa", "qb", "qc"]) s.announceHost(hostInfo(id, { uploadPort: seedEndpoint.port }));
    const before = seedEndpoint.calls.length;
    await s.preheat({ download: spec(nextUrl()), scope: "all_peers" });
    await waitCalls(before + 3);
    assert.equal(seedEndpoint.calls.length - before, 3);
  });
});

describe("keepalive loss, failure and starting over", () => {
  it("a host whose keepalive lapses is dropped by collectGarbage and a waiting child becomes the origin fetcher", async () => {
    const timeout = 1_000;
    const s = service({ hostTimeoutMs: timeout });
    const taskId = sourcedTask(s);
    const u = s.tasks.get(taskId)!.spec.url;
    await new Promise((r) => setTimeout(r, 5));
    s.announceHost(hostInfo("h-child"));
    const reg = s.register({ peerId: "child", hostId: "h-child", download: spec(u) });
    assert.equal(reg.action, "p2p");
    const srcSeen = s.hosts.get("src-host")!.lastSeen;
    const gcAt = srcSeen + timeout + 1;
    assert.ok(s.hosts.get("h-child")!.lastSeen + timeout >= gcAt, "the child's host is still within its keepalive");

    // The child long-polls; the source's host lapses meanwhile.
    const waiting = s.schedule(taskId, "child", reg.version, undefined, 10_000);
    s.collectGarbage(srcSeen + timeout - 1);
    assert.ok(s.hosts.has("src-host"), "not before its keepalive lapsed");
    s.collectGarbage(gcAt);
    assert.ok(!s.hosts.has("src-host"));
    assert.ok(s.hosts.has("h-child"));
    const r = await waiting;
    assert.equal(r.action, "back_to_source", "the orphaned child is rescheduled as the origin fetcher");
    const st = s.taskStatus(taskId);
    assert.deepEqual(
      st.peers.map((p) => [p.peerId, p.state]),
      [["child", "back_to_source"]],
    );
    // The dropped host's peers are gone for good; its host must announce again to register.
    assert.throws(() => s.register({ peerId: "src2", hostId: "src-host", download: spec(u) }), isKiln("NOT_FOUND"));
  });

  it("a host leaving explicitly drops its peers, and its children are rescheduled", async () => {
    const s = service();
    const taskId = sourcedTask(s);
    s.announceHost(hostInfo("h-child"));
    s.register({ peerId: "child", hostId: "h-child", download: spec(s.tasks.get(taskId)!.spec.url) });
    s.leaveHost("src-host", "test");
    assert.equal((await now(s, taskId, "child")).action, "back_to_source");
    assert.throws(() => s.leaveHost("src-host", "again"), isKiln("NOT_FOUND"));
  });

  it("an origin failure of the source fails the task, and every waiting child gets the error", async () => {
    const s = service();
    s.announceHost(hostInfo("src-host"));
    s.announceHost(hostInfo("h-child"));
    const u = nextUrl();
    const r = s.register({ peerId: "src", hostId: "src-host", download: spec(u) });
    const c = s.register({ peerId: "child", hostId: "h-child", download: spec(u) });
    const waiting = s.schedule(r.taskId, "child", c.version, undefined, 10_000);
    const error = { code: "ORIGIN_STATUS", status: 404, message: "origin returned 404 Not Found for http://origin.example/x" };
    s.reportResult(r.taskId, "src", { state: "failed", error });
    const reply = await waiting;
    assert.equal(reply.action, "failed");
    assert.equal(reply.task.state, "failed");
    assert.deepEqual(reply.task.error, error);
    const st = s.taskStatus(r.taskId);
    assert.equal(st.task.state, "failed");
    assert.deepEqual(st.peers.find((p) => p.peerId === "src")!.error, error);
  });

  it("a non-origin failure of the source (e.g. its disk is full) does not fail the task: a child takes over", async () => {
    const s = service();
    s.announceHost(hostInfo("src-host"));
    s.announceHost(hostInfo("h-child"));
    const u = nextUrl();
    const r = s.register({ peerId: "src", hostId: "src-host", download: spec(u) });
    s.register({ peerId: "child", hostId: "h-child", download: spec(u) });
    s.reportResult(r.taskId, "src", { state: "failed", error: { code: "DISK_FULL", status: 503, message: "no space left on device (ENOSPC)" } });
    const reply = await now(s, r.taskId, "child");
    assert.equal(reply.action, "back_to_source");
    assert.notEqual(reply.task.state, "failed");
    assert.equal(reply.task.error, null);
  });

  it("a new registration after a failure starts the task over", () => {
    const s = service();
    s.announceHost(hostInfo("src-host"));
    s.announceHost(hostInfo("h2"));
    const u = nextUrl();
    const r = s.register({ peerId: "src", hostId: "src-host", download: spec(u) });
    s.reportResult(r.taskId, "src", { state: "failed", error: { code: "ORIGIN_UNREACHABLE", status: 502, message: "origin unreachable" } });
    assert.equal(s.taskStatus(r.taskId).task.state, "failed");
    const again = s.register({ peerId: "retry", hostId: "h2", download: spec(u) });
    assert.equal(again.taskId, r.taskId);
    assert.equal(again.action, "back_to_source");
    assert.equal(again.task.state, "running");
    assert.equal(again.task.error, null);
  });

  it("a task whose seed fetched every piece then failed (blob digest mismatch) starts over with the seed triggered again, not waiting on the failed copy", async () => {
    // Regression test (this was a bug): the failed seed's reported pieces made the task look fully
    // available, so a new peer waited as its child for the 15 s fallback instead of a new fetch.
    const s = service({ seedTriggerWaitMs: 60_000 });
    s.announceHost(hostInfo("seed-host", { isSeed: true, uploadPort: seedEndpoint.port }));
    s.announceHost(hostInfo("h1"));
    s.announceHost(hostInfo("h2"));
    const u = nextUrl();
    const before = seedEndpoint.calls.length;
    const first = s.register({ peerId: "p1", hostId: "h1", download: spec(u) });
    const seed = s.register({ peerId: "seed", hostId: "seed-host", download: spec(u) });
    assert.equal(seed.action, "back_to_source");
    s.reportPieces(first.taskId, "seed", { contentLength: LEN, pieceLength: PL, pieces: [piece(0), piece(1), piece(2)] });
    const error = { code: "DIGEST_MISMATCH", status: 502, message: "content digest sha256:aa does not match the blob digest sha256:bb" };
    s.reportResult(first.taskId, "seed", { state: "failed", error });
    assert.equal((await now(s, first.taskId, "p1")).action, "failed");
    s.reportResult(first.taskId, "p1", { state: "failed", error });

    const again = s.register({ peerId: "p2", hostId: "h2", download: spec(u) });
    assert.equal(again.action, "wait", "waits for the seed, triggered anew");
    assert.deepEqual(again.parents, [], "the failed seed is no parent");
    for (let i = 0; i < 100 && seedEndpoint.calls.length < before + 2; i++) await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(
      seedEndpoint.calls.slice(before),
      [
        { taskId: first.taskId, url: u },
        { taskId: first.taskId, url: u },
      ],
      "the seed host was asked to fetch again",
    );
    const seedAgain = s.register({ peerId: "seed-2", hostId: "seed-host", download: spec(u) });
    assert.equal(seedAgain.action, "back_to_source");
    assert.equal(s.taskStatus(first.taskId).task.contentLength, null, "the failed fetch's layout is forgotten");
  });

  it("a finished task serves later peers from the swarm; once its only copy leaves, the next peer fetches from the origin", async () => {
    const s = service();
    const taskId = sourcedTask(s);
    const u = s.tasks.get(taskId)!.spec.url;
    s.reportResult(taskId, "src", { state: "succeeded", contentLength: LEN });
    assert.equal(s.taskStatus(taskId).task.state, "succeeded");
    s.announceHost(hostInfo("h2"));
    const r = s.register({ peerId: "late", hostId: "h2", download: spec(u) });
    assert.equal(r.action, "p2p");
    assert.deepEqual(parentIds(r), ["src"]);
    s.leaveTask(taskId, "src");
    s.leaveTask(taskId, "late");
    s.announceHost(hostInfo("h3"));
    const r2 = s.register({ peerId: "later", hostId: "h3", download: spec(u) });
    assert.equal(r2.action, "back_to_source");
  });

  it("success is refused while pieces are missing or the length differs", () => {
    const s = service();
    s.announceHost(hostInfo("src-host"));
    const r = s.register({ peerId: "src", hostId: "src-host", download: spec(nextUrl()) });
    s.reportPieces(r.taskId, "src", { contentLength: LEN, pieceLength: PL, pieces: [piece(0)] });
    assert.throws(() => s.reportResult(r.taskId, "src", { state: "succeeded", contentLength: LEN }), isKiln("CONFLICT"));
    assert.throws(() => s.reportResult(r.taskId, "src", { state: "succeeded", contentLength: LEN - 1 }), isKiln("CONFLICT"));
    assert.notEqual(s.taskStatus(r.taskId).task.state, "succeeded");
  });

  it("idle tasks with no peers are forgotten by collectGarbage", () => {
    const s = service({ taskIdleTtlMs: 1_000, hostTimeoutMs: 60_000 });
    const taskId = sourcedTask(s);
    s.leaveTask(taskId, "src");
    const idleSince = s.tasks.get(taskId)!.lastActivity;
    s.collectGarbage(idleSince + 999);
    assert.ok(s.tasks.has(taskId));
    s.collectGarbage(idleSince + 1_001);
    assert.throws(() => s.taskStatus(taskId), isKiln("NOT_FOUND"));
  });
});
