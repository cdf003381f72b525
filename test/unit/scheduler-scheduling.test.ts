/**
 * Scheduling on its own: role assignment (origin fetcher, seed trigger, child,
 * orphan rescue), parent sampling bounded whatever the swarm's size, the
 * evaluator's weights.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLogger } from "../../src/common/logger.js";
import { SCHEDULER } from "../../src/common/defaults.js";
import { DownloadSpec } from "../../src/api/common.js";
import type { HostAnnounce, PieceInfo } from "../../src/api/scheduler.js";
import { Resource } from "../../src/scheduler/resource/resource.js";
import type { ControlClientFactory } from "../../src/scheduler/resource/peer-control.js";
import type { Peer } from "../../src/scheduler/resource/peer.js";
import { RoleAssigner } from "../../src/scheduler/scheduling/roles.js";
import { candidateParents, selectParents } from "../../src/scheduler/scheduling/parents.js";
import { FAILURES_FOR_FULL_PENALTY, PARENT_WEIGHTS, parentScore } from "../../src/scheduler/scheduling/evaluator/evaluator.js";
import { hostInfo as baseHostInfo } from "../helpers/host.js";

const MiB = 1024 * 1024;
const PL = 4 * MiB;
const log = createLogger("scheduler-test", "silent");

const hostInfo = (id: string, o: Partial<HostAnnounce> = {}) => baseHostInfo(id, { ip: "10.0.0.1", uploadPort: 4000, ...o });

function piece(n: number): PieceInfo {
  return { number: n, digest: `sha256:${createHash("sha256").update(`piece-${n}`).digest("hex")}`, length: PL };
}

/** Prefetch calls are recorded; `fail` makes every one of them fail. */
function fakeTriggers(fail = false) {
  const calls: string[] = [];
  let settle: () => void = () => undefined;
  const settled = new Promise<void>((r) => (settle = r));
  const factory: ControlClientFactory = (baseUrl) => ({
    baseUrl,
    async prefetch(req) {
      calls.push(req.taskId);
      settle();
      if (fail) throw new Error("connection refused");
      return { accepted: true, taskId: req.taskId };
    },
    async deleteTask() {
      return { deleted: true, bytes: 0 };
    },
    async importImage() {
      return { imported: false, detail: "no runtime" };
    },
  });
  return { factory, calls, settled };
}

let urls = 0;
function world(o: { seedHosts?: string[]; failTriggers?: boolean } = {}) {
  const triggers = fakeTriggers(o.failTriggers);
  const r = new Resource(log, triggers.factory);
  for (const id of o.seedHosts ?? []) r.announceHost(hostInfo(id, { isSeed: true }));
  const roles = new RoleAssigner(r.peerControl, log, { seedTriggerWaitMs: 60_000 });
  const task = r.tasks.forDownload(DownloadSpec.parse({ url: `http://origin.example/${++urls}` }));
  const join = (peerId: string, hostId = `h-${peerId}`, host: Partial<HostAnnounce> = {}) => {
    if (!r.hosts.has(hostId)) r.announceHost(hostInfo(hostId, host));
    const peer = task.join(peerId, r.hosts.get(hostId)!);
    roles.assign(task, peer);
    return peer;
  };
  return { r, roles, task, join, triggers };
}

/** A task of `total` pieces whose origin fetcher holds all of them. */
function sourced(total: number) {
  const w = world();
  const src = w.join("src");
  assert.equal(src.state, "back_to_source");
  w.task.setLayout({ contentLength: total * PL, pieceLength: PL });
  for (let n = 0; n < total; n++) {
    w.task.addDigest(piece(n), true);
    src.addPiece(n);
  }
  return { ...w, src };
}

describe("roles", () => {
  it("with no seed host around, the first peer fetches from the origin and later ones are its children", () => {
    const { task, join } = world();
    const first = join("a");
    assert.equal(first.state, "back_to_source");
    assert.equal(task.state, "running");
    assert.equal(task.source, first);
    assert.equal(join("b").state, "running");
  });

  it("with a seed host, the seed is triggered and peers wait as children; the seed's own peer goes to the origin", async () => {
    const { task, join, triggers } = world({ seedHosts: ["seed"] });
    const a = join("a");
    assert.equal(a.state, "running");
    assert.equal(task.seedTrigger?.hostId, "seed");
    await triggers.settled;
    assert.deepEqual(triggers.calls, [task.id]);
    assert.equal(join("b").state, "running", "a second peer waits for the same trigger");
    assert.equal(join("seed-peer", "seed").state, "back_to_source");
    assert.equal(task.seedTrigger, null);
  });

  it("a failed trigger lets the waiting peers go to the origin: the trigger is cleared and long polls wake", async () => {
    const { task, join, roles, triggers } = world({ seedHosts: ["seed"], failTriggers: true });
    const a = join("a");
    const v = task.version;
    await triggers.settled;
    await new Promise((r) => setImmediate(r));
    assert.equal(task.seedTrigger, null);
    assert.ok(task.version > v);
    roles.rescueOrphan(a);
    assert.equal(a.state, "back_to_source");
  });

  it("an orphan is rescued only when nobody fetches, no seed is on its way and the swarm cannot serve everything", () => {
    const { task, src, join, roles } = sourced(2);
    const child = join("child");
    roles.rescueOrphan(child);
    assert.equal(child.state, "running", "the origin fetcher is still there");
    const holder = join("holder");
    for (const n of [0, 1]) holder.addPiece(n);
    task.leave(src);
    roles.rescueOrphan(child);
    assert.equal(child.state, "running", "the swarm holds every piece");
    task.leave(holder);
    task.seedTrigger = { hostId: "some-seed", until: Date.now() + 60_000 };
    roles.rescueOrphan(child);
    assert.equal(child.state, "running", "a seed is on its way");
    task.seedTrigger = null;
    roles.rescueOrphan(child);
    assert.equal(child.state, "back_to_source");
    assert.equal(task.source, child);
  });
});

describe("parent sampling", () => {
  /** A sourced task with `holders` peers holding piece 0 and `empties` running peers with nothing yet. */
  function big(holders: number, empties = 0) {
    const w = sourced(4);
    const peers: Peer[] = [];
    for (let i = 0; i < holders; i++) {
      const p = w.join(`holder-${i}`);
      p.addPiece(i % 4);
      peers.push(p);
    }
    for (let i = 0; i < empties; i++) w.join(`empty-${i}`);
    const child = w.join("child");
    return { ...w, peers, child };
  }

  const counting = () => {
    const c = { calls: 0, random: () => (c.calls++, Math.random()) };
    return c;
  };

  it("considers at most filterParentLimit candidates, with the same number of draws for 1,000 or 10,000 peers", () => {
    const limit = SCHEDULER.filterParentLimit;
    const draws: number[] = [];
    for (const size of [1_000, 10_000]) {
      const { child } = big(size);
      const c = counting();
      const got = candidateParents(child, limit, c.random);
      assert.equal(got.length, limit);
      assert.equal(new Set(got).size, limit, "no candidate twice");
      draws.push(c.calls);
      const again = new Set(candidateParents(child, limit));
      assert.ok(
        got.some((p) => !again.has(p)),
        "a sample, not the same first peers every time",
      );
    }
    for (const d of draws) assert.ok(d <= 2 * SCHEDULER.filterParentLimit, `${d} random draws`);
  });

  it("the origin fetcher is always a candidate, and peers holding pieces come before peers with none", () => {
    const { child, src, peers } = big(5, 3_000);
    for (let round = 0; round < 20; round++) {
      const got = candidateParents(child, 10);
      assert.equal(got[0], src);
      assert.deepEqual(new Set(got.slice(1, 6)), new Set(peers));
    }
  });

  it("never the child, a peer on its host, a parent it blocked, or an untrusted peer, even in a large swarm", () => {
    const { task, child, peers, join } = big(2_000);
    const sameHost = join("same-host", child.host.id);
    for (const p of peers.slice(0, 1_000)) child.blockedParents.add(p.id);
    for (const p of peers.slice(1_000, 1_500)) p.distrust();
    const banned = new Set<Peer>([child, sameHost, ...peers.slice(0, 1_500)]);
    for (let round = 0; round < 50; round++) {
      for (const p of candidateParents(child, SCHEDULER.filterParentLimit)) assert.ok(!banned.has(p), p.id);
    }
    assert.ok(task.peers.holders.size > 1_000);
  });

  it("selectParents hands out the best `count` candidates, best first", () => {
    const { join, src } = sourced(4);
    const child = join("child");
    const few = join("few");
    few.addPiece(0);
    const many = join("many");
    for (const n of [0, 1, 2]) many.addPiece(n);
    const got = selectParents(child, { count: 2, limit: SCHEDULER.filterParentLimit, now: Date.now() });
    assert.deepEqual(got, [src, many]);
    assert.deepEqual(selectParents(child, { count: 64, limit: 2, now: Date.now() }).length, 2, "no more than the limit is considered");
  });
});

describe("the evaluator", () => {
  function pair(o: { parent?: Partial<HostAnnounce>; child?: Partial<HostAnnounce>; pieces: number; failures?: number }) {
    const { join } = sourced(4);
    const parent = join("parent", "h-parent", o.parent);
    for (let n = 0; n < o.pieces; n++) parent.addPiece(n);
    const child = join("child", "h-child", o.child);
    const now = Date.now();
    for (let i = 0; i < (o.failures ?? 0); i++) parent.failedAsParent(now);
    return parentScore(parent, child, now);
  }
  const W = PARENT_WEIGHTS;
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} ≠ ${b}`);

  it("each term is weighted by its named constant", () => {
    close(pair({ pieces: 0, parent: { freeUploadSlots: 0 } }), 0);
    close(pair({ pieces: 4, parent: { freeUploadSlots: 0 } }), W.usefulPieces);
    close(pair({ pieces: 2, parent: { freeUploadSlots: 5 } }), W.usefulPieces / 2 + W.freeUploadSlots / 2);
    close(pair({ pieces: 0, parent: { freeUploadSlots: 0, idc: "dc", location: "here" }, child: { idc: "dc", location: "here" } }), W.sameIdc + W.sameLocation);
    close(pair({ pieces: 0, parent: { freeUploadSlots: 0, idc: "", location: "" }, child: { idc: "", location: "" } }), 0);
  });

  it("failures as a parent cost up to the full penalty, reached at FAILURES_FOR_FULL_PENALTY", () => {
    const base = pair({ pieces: 4 });
    close(pair({ pieces: 4, failures: 1 }), base - W.recentFailures / FAILURES_FOR_FULL_PENALTY);
    close(pair({ pieces: 4, failures: FAILURES_FOR_FULL_PENALTY }), base - W.recentFailures);
    close(pair({ pieces: 4, failures: FAILURES_FOR_FULL_PENALTY + 5 }), base - W.recentFailures);
  });

  it("pieces the child already holds are no help", () => {
    const { join } = sourced(4);
    const parent = join("parent", "h-parent", { freeUploadSlots: 0 });
    const child = join("child");
    for (const n of [0, 1]) {
      parent.addPiece(n);
      child.addPiece(n);
    }
    close(parentScore(parent, child, Date.now()), 0);
  });
});
