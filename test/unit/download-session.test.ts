/** The download session driven through fakes: a scripted scheduler, parents and an origin in memory. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KilnError } from "../../src/common/errors.js";
import { callJson } from "../../src/api/http-json.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { defaultPieceLength } from "../../src/common/piece.js";
import type { Storage } from "../../src/peer/storage/storage.js";
import { DownloadSession } from "../../src/peer/download/session.js";
import { PeerEngine } from "../../src/peer/download/engine.js";
import { PieceBudget } from "../../src/peer/download/piece-budget.js";
import type { PieceSource } from "../../src/peer/download/piece-fetcher.js";
import {
  Content,
  FakeOrigin,
  ORIGIN_VERSION,
  FakeParents,
  FakeScheduler,
  counter,
  deps,
  parent,
  silentLog,
  spec,
  tempStorage,
  type ScriptedReply,
} from "../helpers/download-fakes.js";

const PIECE = 4096;
const MiB = 1024 * 1024;
const all = (c: Content) => c.pieces.map((p) => p.number);

describe("download session", () => {
  let storage: Storage;
  let cleanup: () => Promise<void>;
  before(async () => ({ storage, cleanup } = await tempStorage()));
  after(() => cleanup());

  let seq = 0;
  async function setup(script: ScriptedReply[], opts: { registerError?: KilnError | KilnError[]; size?: number; pieceLength?: number } = {}) {
    const content = new Content(randomBytes(opts.size ?? 10 * PIECE + 123), opts.pieceLength ?? PIECE);
    const s = spec(`http://origin.test/file-${++seq}`);
    const taskId = taskIdFor(s);
    const task = await storage.create(taskId, { url: s.url, tag: "", application: "", explicitPieceLength: null });
    const scheduler = new FakeScheduler(taskId, content, script, opts.registerError);
    return { content, s, task, scheduler, origin: new FakeOrigin(content) };
  }

  it("p2p: fetches every piece from the parents, spread over them, reports them and succeeds", async () => {
    const { content, s, task, scheduler, origin } = await setup([
      { action: "p2p", parents: [parent("a", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), parent("b", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])] },
    ]);
    const parents = new FakeParents(content);
    const d = deps(scheduler, parents, origin);
    const session = new DownloadSession(d, s, task, undefined);
    await session.run();
    assert.equal(session.state, "succeeded");
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.equal(task.complete, true);
    assert.deepEqual(scheduler.reportedPieces(), all(content), "every piece reported once");
    assert.deepEqual(scheduler.results, [{ state: "succeeded", contentLength: content.data.length }]);
    assert.deepEqual(origin.requests, [], "the origin was not asked");
    assert.ok(new Set(parents.served.map((x) => x.parent)).size === 2, "both parents served pieces");
    assert.equal(await counter(d.metrics, "kiln_peer_download_bytes_total", { source: "p2p" }), content.data.length);
  });

  it("a parent that answers with an error is blocked and reported; its pieces come from another parent", async () => {
    const { content, s, task, scheduler, origin } = await setup([
      { action: "p2p", parents: [parent("bad", all(new Content(Buffer.alloc(10 * PIECE + 123), PIECE))), parent("good", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])] },
    ]);
    const parents = new FakeParents(content, (p) => (p === "bad" ? "refuse" : "serve"));
    const d = deps(scheduler, parents, origin);
    await new DownloadSession(d, s, task, undefined).run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    const badTries = parents.served.filter((x) => x.parent === "bad");
    assert.ok(badTries.length >= 1 && badTries.length <= 2, `asked the bad parent ${badTries.length} times (at most its in-flight limit)`);
    assert.ok(scheduler.failures.length >= 1);
    for (const f of scheduler.failures) assert.deepEqual([f.parentId, f.kind], ["bad", "http_error"]);
    assert.equal(await counter(d.metrics, "kiln_peer_piece_failures_total", { kind: "http_error" }), badTries.length);
  });

  it("the only holder of a piece that stalls is asked again after a pause, not dropped: the download completes", async () => {
    const { content, s, task, scheduler, origin } = await setup([{ action: "p2p", parents: [parent("only", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])] }]);
    const parents = new FakeParents(content, (_p, n, attempt) => (n === 3 && attempt === 1 ? "unreachable" : "serve"));
    const d = deps(scheduler, parents, origin);
    await new DownloadSession(d, s, task, undefined).run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(origin.requests, [], "nothing from the origin");
    assert.equal(parents.served.filter((x) => x.piece === 3).length, 2, "piece 3 asked of the same parent again");
  });

  it("a piece with the wrong digest is never stored; the parent is reported and the piece comes from elsewhere", async () => {
    const { content, s, task, scheduler, origin } = await setup([
      {
        action: "p2p",
        parents: [parent("liar", all(new Content(Buffer.alloc(10 * PIECE + 123), PIECE))), parent("honest", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])],
      },
    ]);
    const parents = new FakeParents(content, (p) => (p === "liar" ? "corrupt" : "serve"));
    // Whatever becomes visible as stored must already be right.
    const wrongWhenStored: number[] = [];
    const checks: Promise<void>[] = [];
    task.on("piece", (n: number) => {
      checks.push(
        readFile(task.contentPath).then((b) => {
          const bytes = b.subarray(n * PIECE, n * PIECE + content.piece(n).length);
          if (!bytes.equals(content.piece(n))) wrongWhenStored.push(n);
        }),
      );
    });
    const d = deps(scheduler, parents, origin);
    await new DownloadSession(d, s, task, undefined).run();
    await Promise.all(checks);
    assert.equal(checks.length, content.pieces.length);
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(wrongWhenStored, []);
    assert.deepEqual(
      task
        .pieces()
        .map((p) => p.digest)
        .sort(),
      content.pieces.map((p) => p.digest).sort(),
      "stored digests are the canonical ones",
    );
    assert.ok(
      scheduler.failures.some((f) => f.parentId === "liar" && f.kind === "digest_mismatch"),
      "the parent was reported for a digest mismatch",
    );
    assert.ok((await counter(d.metrics, "kiln_peer_piece_failures_total", { kind: "digest_mismatch" })) >= 1);
    assert.ok(!scheduler.reportedPieces().some((n, i, a) => a.indexOf(n) !== i), "no piece reported twice");
  });

  it("a busy parent is asked again after its back-off, without waiting for the next poll", async () => {
    const { content, s, task, origin } = await setup([{ action: "p2p" }]);
    // Polls that never come back during the test: only the back-off timer can restart the fetches.
    const scheduler = new FakeScheduler(task.taskId, content, [{ action: "p2p", parents: [parent("full", all(content))] }], undefined, 60_000);
    const parents = new FakeParents(content, (_p, _n, attempt) => (attempt === 1 ? "busy" : "serve"));
    const d = deps(scheduler, parents, origin);
    await new DownloadSession(d, s, task, undefined).run();
    scheduler.stop();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.ok(
      parents.served.some((x) => x.behaviour === "busy"),
      "the parent did answer busy",
    );
    assert.deepEqual(scheduler.failures, [], "busy is not a failure worth reporting");
    assert.ok(scheduler.polls <= 1, `polls: ${scheduler.polls}`);
  });

  it("back_to_source: fetches from the origin, reports the layout before the pieces, and becomes the source of digests", async () => {
    // Without a known layout the origin fetcher picks the default piece length (4 MiB at least).
    const pieceLength = defaultPieceLength(8 * MiB + 1000);
    const { content, s, task, scheduler, origin } = await setup([{ action: "back_to_source", layout: false }], { size: 8 * MiB + 1000, pieceLength });
    const d = deps(scheduler, new FakeParents(content), origin);
    const session = new DownloadSession(d, s, task, undefined);
    await session.run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(origin.requests, [0], "one request from the start");
    assert.equal(scheduler.pieceReports[0]?.pieceLength, pieceLength, "the first report fixes the piece length");
    assert.equal(scheduler.pieceReports[0]?.contentLength, content.data.length);
    assert.deepEqual(scheduler.reportedPieces(), all(content));
    const reported = scheduler.pieceReports.flatMap((r) => r.pieces).sort((a, b) => a.number - b.number);
    assert.deepEqual(reported, content.pieces, "reported digests are the content's");
    assert.deepEqual(scheduler.results, [{ state: "succeeded", contentLength: content.data.length }]);
    assert.equal(await counter(d.metrics, "kiln_peer_download_bytes_total", { source: "origin" }), content.data.length);
  });

  it("no scheduler listening at registration (connection refused): downloads from the origin at once and reports nothing", async () => {
    // What the scheduler client throws when nothing listens: a real refused connection (port 1 on loopback).
    const refused = await callJson("http://127.0.0.1:1", "/", z.unknown()).then(
      () => assert.fail("nothing listens on port 1"),
      (e: KilnError) => e,
    );
    assert.equal(refused.code, "UNAVAILABLE");
    const { content, s, task, scheduler, origin } = await setup([{ action: "p2p" }], { registerError: refused });
    await new DownloadSession(deps(scheduler, new FakeParents(content), origin), s, task, undefined).run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(origin.requests, [0]);
    assert.deepEqual([scheduler.pieceReports, scheduler.results, scheduler.polls], [[], [], 0]);
  });

  it("a scheduler that does not answer the registration (overloaded, or it forgot this host) is asked again: the download stays P2P", async () => {
    const timeout = () => new KilnError("UNAVAILABLE", "http://10.0.0.1:8002 unreachable: accepted the connection but sent no answer within 30 s");
    const unknownHost = new KilnError("NOT_FOUND", "unknown host h1");
    const { content, s, task, scheduler, origin } = await setup([{ action: "p2p", parents: [parent("a", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])] }], {
      registerError: [timeout(), unknownHost, timeout()],
    });
    await new DownloadSession(deps(scheduler, new FakeParents(content), origin), s, task, undefined).run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.equal(scheduler.registrations.length, 4, "three failed registrations, then one answered");
    assert.deepEqual(origin.requests, [], "the origin was not asked");
  });

  it("a scheduler silent for --fallback-ms at registration: the download goes to the origin", async () => {
    const silent = () => new KilnError("UNAVAILABLE", "http://10.0.0.1:8002 unreachable: did not accept the connection within 5 s");
    const { content, s, task, scheduler, origin } = await setup([{ action: "p2p" }], { registerError: Array.from({ length: 100 }, silent) });
    await new DownloadSession(deps(scheduler, new FakeParents(content), origin, { noParentFallbackMs: 600 }), s, task, undefined).run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.ok(scheduler.registrations.length >= 2, `asked ${scheduler.registrations.length} times before giving up`);
    assert.deepEqual(origin.requests, [0]);
  });

  it("the scheduler refusing the registration (4xx) fails the download without touching the origin", async () => {
    const { content, s, task, scheduler, origin } = await setup([{ action: "p2p" }], { registerError: new KilnError("BAD_REQUEST", "download.url: invalid") });
    const session = new DownloadSession(deps(scheduler, new FakeParents(content), origin), s, task, undefined);
    await assert.rejects(session.run(), /download\.url: invalid/);
    assert.equal(session.state, "failed");
    assert.deepEqual(origin.requests, []);
  });

  it("no parent while the scheduler answers: the session waits, and goes to the origin only when the scheduler says so", async () => {
    const wait = { action: "wait" as const };
    const { content, s, task, scheduler, origin } = await setup([wait, wait, wait, wait, { action: "back_to_source" }]);
    const d = deps(scheduler, new FakeParents(content), origin, { noParentFallbackMs: 1 });
    await new DownloadSession(d, s, task, undefined).run();
    assert.ok(scheduler.polls >= 4, `it kept asking the scheduler (${scheduler.polls} polls) instead of falling back after 1 ms`);
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(origin.requests, [0]);
  });

  it("no parent for too long while the scheduler does not answer: falls back to the origin", async () => {
    const { content, s, task, scheduler, origin } = await setup([{ action: "wait" }, { action: "wait", down: true }]);
    const d = deps(scheduler, new FakeParents(content), origin, { noParentFallbackMs: 30 });
    await new DownloadSession(d, s, task, undefined).run();
    assert.ok(scheduler.polls >= 1, "it asked the scheduler for parents first");
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(origin.requests, [0]);
    assert.deepEqual(scheduler.results, [{ state: "succeeded", contentLength: content.data.length }]);
  });

  it("parents that stop serving mid-way: the origin is asked only for what is missing, from the first missing piece", async () => {
    const wait = { action: "wait" as const };
    const { content, s, task, scheduler, origin } = await setup([
      { action: "p2p", parents: [parent("half", [0, 1, 2, 3, 4])] },
      wait,
      wait,
      wait,
      { action: "back_to_source" },
    ]);
    const d = deps(scheduler, new FakeParents(content), origin, { noParentFallbackMs: 30 });
    await new DownloadSession(d, s, task, undefined).run();
    assert.deepEqual(await readFile(task.contentPath), content.data);
    assert.deepEqual(origin.requests, [5 * PIECE]);
    assert.deepEqual(origin.ifRanges, [ORIGIN_VERSION], "the rest is asked of the version the first pieces came from");
    assert.equal(await counter(d.metrics, "kiln_peer_download_bytes_total", { source: "origin" }), content.data.length - 5 * PIECE);
  });

  it("an origin whose content changed since the first pieces: the download fails, never a file of two versions", async () => {
    const { content, s, task, scheduler } = await setup([
      { action: "p2p", parents: [parent("half", [0, 1, 2, 3, 4])] },
      { action: "wait" },
      { action: "wait" },
      { action: "wait" },
      { action: "back_to_source" },
    ]);
    const changed = new FakeOrigin(content, '"v2"');
    const d = deps(scheduler, new FakeParents(content), changed, { noParentFallbackMs: 30 });
    await assert.rejects(new DownloadSession(d, s, task, undefined).run(), /origin content changed during the download.*If-Range "v1".*version "v2"/);
    assert.equal(task.complete, false);
    assert.deepEqual(changed.requests, [5 * PIECE]);
  });

  it("a download that fails says why: the parents that failed it and how, the pieces stored, why it went to the origin", async () => {
    const { content, s, task, scheduler } = await setup([
      { action: "p2p", parents: [parent("liar", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), parent("half", [0, 1, 2, 3, 4])] },
      { action: "wait" },
      { action: "wait" },
      { action: "back_to_source" },
    ]);
    const parents = new FakeParents(content, (p) => (p === "liar" ? "corrupt" : "serve"));
    const d = deps(scheduler, parents, new FakeOrigin(content, '"v2"'), { noParentFallbackMs: 30 });
    const err = await new DownloadSession(d, s, task, undefined).run().then(
      () => assert.fail("the download should fail"),
      (e: KilnError) => e,
    );
    assert.equal(err.code, "ORIGIN_STATUS");
    assert.match(err.message, /^origin content changed during the download/, "the cause comes first");
    assert.match(err.message, /\b5 of 11 pieces stored\b/);
    assert.match(err.message, /\b2 parents offered, 1 failed: liar \(\d+× digest_mismatch; last: piece \d+, /);
    assert.doesNotMatch(err.message, /half \(/, "a parent that served well is not named");
    assert.match(err.message, /went to the origin: the scheduler sent it there \(no holder could serve\)/);
    assert.match(err.message, /scheduler's last answer [\d.]+ s ago: back_to_source/);
  });

  it("downloads of one peer share its piece budget: never more fetches in flight than it allows, and every download completes", async () => {
    /** Fetches in flight across every download, and the most seen at once. */
    const load = { now: 0, max: 0 };
    const counting = (inner: FakeParents): PieceSource => ({
      async fetch(p, taskId, n, sink) {
        load.max = Math.max(load.max, ++load.now);
        try {
          await new Promise((r) => setTimeout(r, 2));
          return await inner.fetch(p, taskId, n, sink);
        } finally {
          load.now--;
        }
      },
    });
    const both = async (budget: PieceBudget) => {
      load.max = 0;
      const runs = [];
      for (let i = 0; i < 3; i++) {
        const pieces = Array.from({ length: 11 }, (_, n) => n); // setup's content: 10 pieces and a short one
        const { content, s, task, scheduler, origin } = await setup([{ action: "p2p", parents: [parent("a", pieces), parent("b", pieces)] }]);
        const session = new DownloadSession(deps(scheduler, counting(new FakeParents(content)), origin, {}, budget), s, task, undefined);
        runs.push(session.run().then(async () => assert.deepEqual(await readFile(task.contentPath), content.data)));
      }
      await Promise.all(runs);
      return load.max;
    };
    const shared = new PieceBudget(3);
    assert.equal(await both(shared), 3, "three downloads of four pieces at a time each, three fetches at once on the peer");
    assert.equal(shared.free, 3, "every slot given back");
    assert.ok((await both(new PieceBudget(100))) > 3, "without the shared budget the same downloads run more at once");
  });

  it("the scheduler says the task failed: the session fails with the task's error", async () => {
    const { content, s, task, origin } = await setup([{ action: "p2p" }]);
    const scheduler = new FakeScheduler(task.taskId, content, [{ action: "wait" }]);
    scheduler.schedule = async () => ({
      version: 9,
      action: "failed",
      task: {
        id: task.taskId,
        state: "failed",
        contentLength: null,
        pieceLength: null,
        totalPieces: null,
        error: { code: "ORIGIN_STATUS", status: 404, message: "origin returned 404" },
      },
      pieces: [],
      parents: [],
    });
    const session = new DownloadSession(deps(scheduler, new FakeParents(content), origin), s, task, undefined);
    await assert.rejects(session.run(), (err: KilnError) => err.code === "ORIGIN_STATUS" && err.status === 404);
    assert.equal(scheduler.results[0]?.state, "failed");
  });
});

describe("download engine: an OCI blob is checked against its digest before it is complete", () => {
  let storage: Storage;
  let cleanup: () => Promise<void>;
  before(async () => ({ storage, cleanup } = await tempStorage()));
  after(() => cleanup());

  async function pull(claimed: (c: Content) => string) {
    // Three pieces at the default piece length: two may stream, the last waits for the digest check.
    const content = new Content(randomBytes(8 * MiB + 5), defaultPieceLength(8 * MiB + 5));
    const url = `http://registry.test/v2/library/app/blobs/${claimed(content)}`;
    const scheduler = new FakeScheduler(taskIdFor(spec(url)), content, [{ action: "back_to_source", layout: false }]);
    const engine = new PeerEngine(deps(scheduler, new FakeParents(content), new FakeOrigin(content)), storage, silentLog);
    const handle = await engine.download(spec(url));
    const received: Buffer[] = [];
    const streamed = (async () => {
      for await (const r of handle.ranges()) {
        // Removed when the download fails: the next range then throws the cause.
        const fh = await open(handle.task.contentPath, "r").catch(() => undefined);
        if (!fh) continue;
        const bytes = Buffer.alloc(r.end - r.start);
        await fh.read(bytes, 0, bytes.length, r.start).finally(() => fh.close());
        received.push(bytes);
      }
    })();
    return { content, handle, scheduler, received, streamed };
  }

  it("a blob whose content does not match: the download fails, no complete copy is served and nothing stays on disk", async () => {
    const { content, handle, scheduler, received, streamed } = await pull(() => `sha256:${"0".repeat(64)}`);
    await assert.rejects(handle.done, /does not match the blob digest/);
    await assert.rejects(streamed, /does not match the blob digest/);
    assert.ok(Buffer.concat(received).length < content.data.length, "the reader never got the whole content");
    assert.equal(handle.task.complete, false);
    assert.equal(storage.get(handle.taskId), undefined);
    assert.equal(existsSync(join(storage.tasksDir, handle.taskId)), false);
    assert.equal(scheduler.results[0]?.state, "failed");
  });

  it("a blob that matches its digest completes and streams whole", async () => {
    const { content, handle, received, streamed } = await pull((c) => c.digest);
    await handle.done;
    await streamed;
    assert.deepEqual(Buffer.concat(received), content.data);
    assert.equal(storage.get(handle.taskId)?.complete, true);
  });
});
