/** The piece dispatcher: which piece from which parent (first missing, then rarest), within the limits, avoiding failed and busy parents. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PieceDispatcher, type Assignment } from "../../src/peer/download/dispatcher.js";
import type { PieceInfo } from "../../src/api/scheduler.js";
import { feedBits, parent, type FakeParent } from "../helpers/download-fakes.js";

const digests = (n: number): PieceInfo[] => Array.from({ length: n }, (_, i) => ({ number: i, digest: `sha256:${String(i).padStart(64, "0")}`, length: 10 }));
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const pairs = (as: Assignment[]) => as.map((a) => `${a.piece}@${a.parent.peerId}`);

function dispatcher(opts: Partial<{ concurrentPieces: number; piecesPerParent: number }> = {}, stored = new Set<number>(), random?: () => number) {
  const d = new PieceDispatcher({ concurrentPieces: 4, piecesPerParent: 2, busyBackoffMs: 100, ...opts }, (n) => stored.has(n), random);
  d.addDigests(digests(10));
  return d;
}

/** Parents as the session adds them: known, then what their have feeds open with. */
function connect(d: PieceDispatcher, parents: FakeParent[]): void {
  d.addParents(parents);
  for (const p of parents) d.parentHolds(p.peerId, feedBits(p));
}

/** A seeded generator, so "random among equals" is repeatable. */
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

describe("piece dispatcher", () => {
  it("starts the first missing piece, then the rarest among the parents, within both limits", () => {
    const d = dispatcher({ piecesPerParent: 4 }, new Set([0, 2]));
    connect(d, [parent("a", range(0, 10)), parent("b", range(1, 7)), parent("c", range(1, 5))]);
    const { assignments, starved } = d.assign(0);
    assert.equal(assignments[0]?.piece, 1, "the first missing piece goes first (a reader streams in order)");
    assert.deepEqual(
      assignments
        .slice(1)
        .map((a) => a.piece)
        .sort(),
      [7, 8, 9],
      "then the pieces only one parent holds, 4 at once",
    );
    assert.ok(assignments.slice(1).every((a) => a.parent.peerId === "a"));
    assert.equal(starved, false);
    assert.deepEqual(d.assign(0).assignments, [], "nothing more while 4 are in flight");
    assert.equal(d.inFlightCount, 4);
  });

  it("among equally rare pieces the order is random, so children of one parent ask it for different pieces", () => {
    const orders = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5]) {
      const d = dispatcher({ concurrentPieces: 4, piecesPerParent: 4 }, new Set([0]), seeded(seed));
      connect(d, [parent("a", range(0, 10))]);
      orders.add(pairs(d.assign(0).assignments).join(","));
    }
    assert.ok(orders.size >= 3, `different children pick different pieces: ${[...orders].join(" | ")}`);
  });

  it("spreads the pieces over the parents", () => {
    const d = dispatcher({}, new Set([0, 2]));
    connect(d, [parent("a", range(0, 10)), parent("b", range(0, 10)), parent("c", range(0, 10))]);
    const { assignments } = d.assign(0);
    const perParent = new Map<string, number>();
    for (const a of assignments) perParent.set(a.parent.peerId, (perParent.get(a.parent.peerId) ?? 0) + 1);
    assert.ok(Math.max(...perParent.values()) <= 2 && perParent.size === 3, `spread: ${pairs(assignments)}`);
  });

  it("a piece goes only to a parent that holds it; with nothing any parent holds the dispatcher is starved", () => {
    const d = dispatcher();
    connect(d, [parent("a", [0, 1]), parent("b", [2])]);
    assert.deepEqual(pairs(d.assign(0).assignments).sort(), ["0@a", "1@a", "2@b"]);
    const empty = dispatcher();
    connect(empty, [parent("a", [])]);
    assert.equal(empty.assign(0).starved, true);
    empty.parentHas("a", 5);
    assert.deepEqual(pairs(empty.assign(0).assignments), ["5@a"], "a piece the parent's feed announces is fetched");
  });

  it("a parent whose feed ended is asked for nothing more", () => {
    const d = dispatcher();
    connect(d, [parent("a", range(0, 10))]);
    d.removeParent("a");
    assert.equal(d.parentCount, 0);
    assert.deepEqual(d.assign(0).assignments, []);
  });

  it("a parent at its in-flight limit gets no more; a freed slot is used again", () => {
    const stored = new Set<number>();
    const d = dispatcher({ concurrentPieces: 8, piecesPerParent: 2 }, stored);
    connect(d, [parent("a", range(0, 10))]);
    const first = d.assign(0).assignments;
    assert.equal(first.length, 2, `two at once from one parent: ${pairs(first)}`);
    assert.equal(pairs(first)[0], "0@a");
    stored.add(0);
    d.release(first[0]!);
    const next = d.assign(0).assignments;
    assert.equal(next.length, 1, "one more once a slot is free");
    assert.ok(next[0]!.piece !== first[1]!.piece && next[0]!.piece > 0);
  });

  it("a parent that failed a piece is blocked: the piece goes to another parent, and the blocked one gets nothing more", () => {
    const stored = new Set<number>();
    const d = dispatcher({ concurrentPieces: 1 }, stored);
    connect(d, [parent("p", range(0, 10)), parent("q", range(0, 10))]);
    const [a] = d.assign(0).assignments;
    d.failed(a!, "digest_mismatch", 0);
    const blocked = a!.parent.peerId;
    const other = blocked === "p" ? "q" : "p";
    const got: string[] = [];
    for (let next = d.assign(0).assignments[0]; next; next = d.assign(0).assignments[0]) {
      got.push(`${next.piece}@${next.parent.peerId}`);
      stored.add(next.piece);
      d.release(next);
    }
    assert.deepEqual(
      got,
      range(0, 10).map((n) => `${n}@${other}`),
      "every piece, the failed one first, from the other parent",
    );
    assert.equal(d.isBlocked(blocked), true);
  });

  it("a parent that stalls is asked again after a pause that doubles with each stall in a row, and is never blocked", () => {
    const d = dispatcher({ concurrentPieces: 1 });
    connect(d, [parent("a", range(0, 10))]);
    const [first] = d.assign(0).assignments;
    d.failed(first!, "timeout", 0);
    assert.deepEqual(d.assign(999).assignments, [], "left alone for 1 s");
    const [second] = d.assign(1_000).assignments;
    assert.equal(second?.parent.peerId, "a");
    d.failed(second!, "unreachable", 1_000);
    assert.deepEqual(d.assign(2_999).assignments, [], "then for 2 s");
    const [third] = d.assign(3_000).assignments;
    d.succeeded(third!);
    assert.equal(d.isBlocked("a"), false);
    const [fourth] = d.assign(3_000).assignments;
    d.failed(fourth!, "timeout", 3_000);
    assert.equal(d.nextRetryAt(3_000), 4_000, "a success resets the pause to 1 s");
  });

  it("a busy parent is left alone until its back-off passes, then used again", () => {
    const d = dispatcher({ concurrentPieces: 1 });
    connect(d, [parent("a", range(0, 10))]);
    const [a] = d.assign(0).assignments;
    d.failed(a!, "busy", 1_000);
    assert.deepEqual(d.assign(1_050).assignments, [], "still backing off");
    assert.deepEqual(pairs(d.assign(1_100).assignments), ["0@a"], "tried again after the back-off");
    assert.equal(d.isBlocked("a"), false);
  });

  it("a parent busy again and again is asked less and less often, and normally again once it served a piece", () => {
    const d = dispatcher({ concurrentPieces: 1 });
    connect(d, [parent("a", range(0, 10))]);
    const pauses: number[] = [];
    let now = 0;
    for (let i = 0; i < 6; i++) {
      const [a] = d.assign(now).assignments;
      assert.ok(a, `asked again at ${now} ms`);
      d.failed(a, "busy", now);
      const next = d.nextRetryAt(now)!;
      pauses.push(next - now);
      now = next;
    }
    assert.deepEqual(pauses, [100, 200, 400, 800, 1_600, 1_600], "doubling, up to 16 × the back-off");
    const [served] = d.assign(now).assignments;
    d.succeeded(served!);
    const [again] = d.assign(now).assignments;
    d.failed(again!, "busy", now);
    assert.equal(d.nextRetryAt(now)! - now, 100, "a served piece ends the run of busy answers");
  });

  it("equally loaded parents: a peer before a seed, then the one used least, so every parent gets work", () => {
    const stored = new Set<number>();
    const d = dispatcher({ concurrentPieces: 1, piecesPerParent: 1 }, stored);
    const seed = { ...parent("seed", range(0, 10)), isSeed: true };
    connect(d, [seed, parent("x", range(0, 10)), parent("y", range(0, 10))]);
    const order: string[] = [];
    for (let next = d.assign(0).assignments[0]; next; next = d.assign(0).assignments[0]) {
      order.push(next.parent.peerId);
      stored.add(next.piece);
      d.release(next);
    }
    assert.deepEqual(order.slice(0, 4), ["x", "y", "x", "y"], "peers take turns while the seed is spared");
    assert.equal(order.length, 10);
  });

  it("the seed is asked for what only it holds; a piece another parent holds waits for that parent unless nothing else is in flight", () => {
    const d = dispatcher({ concurrentPieces: 4, piecesPerParent: 1 });
    const seed = { ...parent("seed", range(0, 10)), isSeed: true };
    connect(d, [seed, parent("x", [0, 1, 2])]);
    const first = pairs(d.assign(0).assignments);
    assert.equal(first.length, 2, `x takes one, the seed one it alone holds: ${first}`);
    assert.ok(first.some((p) => p.endsWith("@x")));
    const fromSeed = first.find((p) => p.endsWith("@seed"))!;
    assert.ok(Number(fromSeed.split("@")[0]) >= 3, `the seed serves a piece x lacks: ${fromSeed}`);
    const spared = dispatcher({ concurrentPieces: 4, piecesPerParent: 1 });
    connect(spared, [seed, parent("x", range(0, 10))]);
    const [fromX, ...more] = spared.assign(0).assignments;
    assert.deepEqual([fromX?.parent.peerId, more.length], ["x", 0], "x holds everything: the seed is spared");
    spared.failed(fromX!, "busy", 0);
    assert.deepEqual(
      spared.assign(10).assignments.map((a) => a.parent.peerId),
      ["seed"],
      "x backs off and nothing is in flight: the seed helps",
    );
  });

  it("says when a parent backing off may be asked again", () => {
    const d = dispatcher({ concurrentPieces: 2 });
    connect(d, [parent("a", range(0, 10)), parent("b", range(0, 10))]);
    assert.equal(d.nextRetryAt(0), undefined);
    const [a, b] = d.assign(0).assignments;
    d.failed(a!, "busy", 1_000);
    d.failed(b!, "busy", 1_050);
    assert.equal(d.nextRetryAt(1_000), 1_100);
    assert.equal(d.nextRetryAt(1_120), 1_150);
    assert.equal(d.nextRetryAt(1_200), undefined);
  });

  it("a cancelled fetch frees its slot without blocking the parent", () => {
    const d = dispatcher({ concurrentPieces: 1 });
    connect(d, [parent("a", range(0, 10))]);
    const [a] = d.assign(0).assignments;
    d.release(a!);
    assert.equal(d.inFlightCount, 0);
    assert.deepEqual(pairs(d.assign(0).assignments), ["0@a"]);
  });
});
