/**
 * Registration, reports and the status view, built from the real resources and
 * scheduling units (no façade, no HTTP): a peer that already holds the whole task,
 * the digests a reply carries, and what the status view shows.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLogger } from "../../src/common/logger.js";
import { KilnError } from "../../src/common/errors.js";
import { DownloadSpec } from "../../src/api/common.js";
import type { HostAnnounce, PieceInfo } from "../../src/api/scheduler.js";
import { defaultSchedulerOptions } from "../../src/scheduler/options.js";
import { Resource } from "../../src/scheduler/resource/resource.js";
import { RoleAssigner } from "../../src/scheduler/scheduling/roles.js";
import { Scheduling } from "../../src/scheduler/scheduling/scheduling.js";
import { Registration } from "../../src/scheduler/registration.js";
import { Reports } from "../../src/scheduler/reports.js";
import { taskStatus } from "../../src/scheduler/status.js";
import { hostInfo as baseHostInfo } from "../helpers/host.js";

const MiB = 1024 * 1024;
const PL = 4 * MiB;
const log = createLogger("scheduler-test", "silent");

const hostInfo = (id: string, o: Partial<HostAnnounce> = {}) => baseHostInfo(id, { hostname: `name-${id}`, ip: "10.0.0.7", uploadPort: 4000, ...o });

function piece(n: number, salt = ""): PieceInfo {
  return { number: n, digest: `sha256:${createHash("sha256").update(`piece-${n}${salt}`).digest("hex")}`, length: PL };
}

const isKiln = (code: KilnError["code"], message?: RegExp) => (e: unknown) =>
  e instanceof KilnError && e.code === code && (!message || message.test(e.message));

let urls = 0;
function units() {
  const r = new Resource(log);
  const opts = { ...defaultSchedulerOptions, scheduleWaitMs: 0, maxScheduleWaitMs: 30_000 };
  const roles = new RoleAssigner(r.peerControl, log, opts);
  const scheduling = new Scheduling(r.tasks, roles, opts);
  const registration = new Registration(r, roles, scheduling, opts);
  const results: string[] = [];
  const reports = new Reports(r.tasks, log, (task) => results.push(task.id));
  for (const h of ["h1", "h2", "h3", "h4"]) r.announceHost(hostInfo(h));
  const download = DownloadSpec.parse({ url: `http://origin.example/${++urls}` });
  const register = (peerId: string, hostId: string, completed?: { contentLength: number; pieceLength: number; pieces: PieceInfo[] }) =>
    registration.register({ peerId, hostId, download, ...(completed ? { completed } : {}) });
  const resume = (peerId: string, hostId: string, pieces: PieceInfo[], fromOrigin: boolean) =>
    registration.register({ peerId, hostId, download, resumed: { contentLength: 3 * PL, pieceLength: PL, pieces, fromOrigin, validator: '"v1"' } });
  return { r, scheduling, reports, register, resume, results };
}

const all = [piece(0), piece(1), piece(2)];

describe("a download in progress registering again after a scheduler restart", () => {
  it("a child back first makes newcomers wait; the origin fetcher comes back as the source with its pieces; a second claim to fetch is refused", () => {
    const { resume, register, r } = units();
    const child = resume("child", "h2", [piece(0)], false);
    assert.equal(child.action, "wait", "no origin fetcher yet, and the child does not become one");
    const task = r.tasks.task(child.taskId);
    assert.ok(task.seedTrigger && task.seedTrigger.until > Date.now(), "others wait for the origin fetcher to come back");
    assert.equal(register("newcomer", "h3").action, "p2p", "the child's piece is offered meanwhile");
    const source = resume("fetcher", "h1", [piece(0), piece(1)], true);
    assert.equal(source.action, "back_to_source", "it goes on fetching from the origin");
    assert.equal(task.source?.id, "fetcher");
    assert.equal(task.seedTrigger, null);
    assert.equal(task.validator, '"v1"');
    assert.deepEqual(
      task.digests.all().map((p) => p.number),
      [0, 1],
    );
    assert.equal(taskStatus(task).peers.find((p) => p.peerId === "fetcher")!.finishedPieces, 2);
    assert.throws(() => resume("other-fetcher", "h4", [], true), isKiln("CONFLICT", /already fetches task .* from the origin/));
    assert.throws(() => resume("liar", "h4", [piece(1, "other")], false), isKiln("CONFLICT", /piece 1 digest .* differs/));
  });
});

describe("a peer that already holds the whole task", () => {
  it("is adopted as a finished parent: the task takes its layout and digests, and later peers get it as a parent", () => {
    const { register, r } = units();
    const first = register("keeper", "h1", { contentLength: 3 * PL, pieceLength: PL, pieces: all });
    assert.equal(first.task.state, "succeeded");
    assert.equal(first.task.totalPieces, 3);
    assert.deepEqual(first.pieces.map((p) => p.number).sort(), [0, 1, 2]);
    const next = register("newcomer", "h2");
    assert.equal(next.action, "p2p");
    assert.deepEqual(
      next.parents.map((p) => p.peerId),
      ["keeper"],
    );
    assert.equal(taskStatus(r.tasks.task(first.taskId)).peers.find((p) => p.peerId === "keeper")!.state, "succeeded");
  });

  it("must agree with what the task knows and list every piece once", () => {
    const { register } = units();
    register("keeper", "h1", { contentLength: 3 * PL, pieceLength: PL, pieces: all });
    const claim = (pieces: PieceInfo[], contentLength = 3 * PL, pieceLength = PL) => ({ contentLength, pieceLength, pieces });
    assert.throws(() => register("a", "h2", claim(all.slice(0, 2), 3 * PL, 2 * PL)), isKiln("CONFLICT", /piece length/));
    assert.throws(() => register("b", "h2", claim(all, 3 * PL - 1)), isKiln("CONFLICT", /content length/));
    assert.throws(() => register("c", "h2", claim([piece(0), piece(1, "x"), piece(2)])), isKiln("CONFLICT", /digest/));
    assert.throws(() => register("d", "h2", claim([piece(0), piece(1)])), isKiln("BAD_REQUEST", /each of its 3 pieces/));
    assert.throws(() => register("e", "h2", claim([piece(0), piece(1), piece(3)])), isKiln("BAD_REQUEST"));
  });
});

describe("the digests a reply carries", () => {
  it("registration: every digest known; a schedule call: those after `since`, all of them for -1", async () => {
    const { register, reports, scheduling } = units();
    const src = register("src", "h1");
    reports.pieces(src.taskId, "src", { contentLength: 3 * PL, pieceLength: PL, pieces: [piece(0), piece(1)] });
    const child = register("child", "h2");
    assert.deepEqual(
      child.pieces.map((p) => p.number),
      [0, 1],
    );
    const none = await scheduling.schedule(child.taskId, "child", child.version, undefined, 0);
    assert.deepEqual(none.pieces, [], "nothing new since the registration");
    reports.pieces(src.taskId, "src", { pieces: [piece(2)] });
    const fresh = await scheduling.schedule(child.taskId, "child", none.version, undefined, 0);
    assert.deepEqual(fresh.pieces, [piece(2)]);
    const everything = await scheduling.schedule(child.taskId, "child", -1, undefined, 0);
    assert.deepEqual(
      everything.pieces.map((p) => p.number),
      [0, 1, 2],
    );
    // A peer that accumulates what it is sent holds every digest, as one that was sent all of them each time.
    const held = new Map([...child.pieces, ...none.pieces, ...fresh.pieces].map((p) => [p.number, p.digest]));
    assert.deepEqual(held, new Map(everything.pieces.map((p) => [p.number, p.digest])));
  });

  it("a long poll is answered with the digests reported while it waited", async () => {
    const { register, reports, scheduling } = units();
    const src = register("src", "h1");
    const child = register("child", "h2");
    const waiting = scheduling.schedule(child.taskId, "child", child.version, undefined, 10_000);
    reports.pieces(src.taskId, "src", { contentLength: PL, pieceLength: PL, pieces: [piece(0)] });
    assert.deepEqual((await waiting).pieces, [piece(0)]);
  });
});

describe("parents handed out", () => {
  it("as many as asked for, up to 64, even beyond the candidates sampled by default", async () => {
    const { r, register, reports, scheduling } = units();
    const src = register("src", "h1");
    reports.pieces(src.taskId, "src", { contentLength: PL, pieceLength: PL, pieces: [piece(0)] });
    for (let i = 0; i < 100; i++) {
      r.announceHost(hostInfo(`many-${i}`));
      register(`holder-${i}`, `many-${i}`);
      reports.pieces(src.taskId, `holder-${i}`, { pieces: [piece(0)] });
    }
    const child = register("child", "h2");
    assert.equal(child.parents.length, defaultSchedulerOptions.parentsPerSchedule);
    assert.equal((await scheduling.schedule(src.taskId, "child", -1, 64, 0)).parents.length, 64);
  });
});

describe("reports", () => {
  it("a result moves the preheat queue on; success needs every piece", () => {
    const { register, reports, results } = units();
    const src = register("src", "h1");
    reports.pieces(src.taskId, "src", { contentLength: 2 * PL, pieceLength: PL, pieces: [piece(0)] });
    assert.throws(() => reports.result(src.taskId, "src", { state: "succeeded", contentLength: 2 * PL }), isKiln("CONFLICT", /1 of 2 pieces/));
    assert.deepEqual(results, []);
    reports.pieces(src.taskId, "src", { pieces: [piece(1)] });
    reports.result(src.taskId, "src", { state: "succeeded", contentLength: 2 * PL });
    assert.deepEqual(results, [src.taskId]);
  });

  it("pieces beyond the task's end are refused", () => {
    const { register, reports } = units();
    const src = register("src", "h1");
    const reply = reports.pieces(src.taskId, "src", { contentLength: 2 * PL, pieceLength: PL, pieces: [piece(0), piece(2)] });
    assert.deepEqual(reply.rejected, [{ number: 2, reason: "the task has 2 pieces" }]);
  });
});

describe("the status view", () => {
  it("shows the task and every peer with its host and port, state, pieces, bytes and error", () => {
    const { register, reports, r } = units();
    const src = register("src", "h1");
    register("child", "h2");
    reports.pieces(src.taskId, "src", { contentLength: 3 * PL, pieceLength: PL, validator: '"etag-1"', pieces: [piece(0), piece(1)] });
    const error = { code: "DISK_FULL", status: 503, message: "no space left" };
    reports.result(src.taskId, "child", { state: "failed", error });
    const st = taskStatus(r.tasks.task(src.taskId));
    assert.deepEqual(st.task, {
      id: src.taskId,
      state: "running",
      contentLength: 3 * PL,
      pieceLength: PL,
      totalPieces: 3,
      error: null,
      validator: '"etag-1"',
      access: null,
    });
    assert.deepEqual(st.peers, [
      {
        peerId: "src",
        hostId: "h1",
        hostname: "name-h1",
        ip: "10.0.0.7",
        port: 4000,
        isSeed: false,
        state: "back_to_source",
        finishedPieces: 2,
        finishedBytes: 2 * PL,
        error: null,
      },
      {
        peerId: "child",
        hostId: "h2",
        hostname: "name-h2",
        ip: "10.0.0.7",
        port: 4000,
        isSeed: false,
        state: "failed",
        finishedPieces: 0,
        finishedBytes: 0,
        error,
      },
    ]);
  });
});
