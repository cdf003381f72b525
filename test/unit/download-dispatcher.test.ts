/** The piece dispatcher: which piece from which parent, within the limits, avoiding failed and busy parents. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PieceDispatcher, type Assignment } from "../../src/peer/download/dispatcher.js";
import type { PieceInfo } from "../../src/api/scheduler.js";
import { parent } from "../helpers/download-fakes.js";

const digests = (n: number): PieceInfo[] => Array.from({ length: n }, (_, i) => ({ number: i, digest: `sha256:${String(i).padStart(64, "0")}`, length: 10 }));
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const pairs = (as: Assignment[]) => as.map((a) => `${a.piece}@${a.parent.peerId}`);

function dispatcher(opts: Partial<{ concurrentPieces: number; piecesPerParent: number }> = {}, stored = new Set<number>()) {
  const d = new PieceDispatcher({ concurrentPieces: 4, piecesPerParent: 2, busyBackoffMs: 100, ...opts }, (n) => stored.has(n));
  d.addDigests(digests(10));
  return d;
}

describe("piece dispatcher", () => {
  it("starts the lowest missing pieces first, spread over the parents, within both limits", () => {
    const d = dispatcher({}, new Set([0, 2]));
    d.updateParents([parent("a", range(0, 10)), parent("b", range(0, 10)), parent("c", range(0, 10))]);
    const { assignments, starved } = d.assign(0);
    assert.deepEqual(
      assignments.map((a) => a.piece),
      [1, 3, 4, 5],
      "lowest missing first, 4 at once",
    );
    const perParent = new Map<string, number>();
    for (const a of assignments) perParent.set(a.parent.peerId, (perParent.get(a.parent.peerId) ?? 0) + 1);
    assert.ok(Math.max(...perParent.values()) <= 2 && perParent.size === 3, `spread: ${pairs(assignments)}`);
    assert.equal(starved, false);
    assert.deepEqual(d.assign(0).assignments, [], "nothing more while 4 are in flight");
    assert.equal(d.inFlightCount, 4);
  });

  it("a piece goes only to a parent that holds it; a piece nobody holds leaves the dispatcher starved", () => {
    const d = dispatcher();
    d.updateParents([parent("a", [0, 1]), parent("b", [2])]);
    const { assignments, starved } = d.assign(0);
    assert.deepEqual(pairs(assignments).sort(), ["0@a", "1@a", "2@b"]);
    assert.equal(starved, true);
  });

  it("a parent at its in-flight limit gets no more; a freed slot is used again", () => {
    const stored = new Set<number>();
    const d = dispatcher({ concurrentPieces: 8, piecesPerParent: 2 }, stored);
    d.updateParents([parent("a", range(0, 10))]);
    const first = d.assign(0).assignments;
    assert.deepEqual(pairs(first), ["0@a", "1@a"]);
    stored.add(0);
    d.release(first[0]!);
    assert.deepEqual(pairs(d.assign(0).assignments), ["2@a"]);
  });

  it("a parent that failed a piece is blocked: the piece goes to another parent, and the blocked one gets nothing more", () => {
    const stored = new Set<number>();
    const d = dispatcher({ concurrentPieces: 1 }, stored);
    d.updateParents([parent("p", range(0, 10)), parent("q", range(0, 10))]);
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

  it("a busy parent is left alone until its back-off passes, then used again", () => {
    const d = dispatcher({ concurrentPieces: 1 });
    d.updateParents([parent("a", range(0, 10))]);
    const [a] = d.assign(0).assignments;
    d.failed(a!, "busy", 1_000);
    assert.deepEqual(d.assign(1_050).assignments, [], "still backing off");
    assert.deepEqual(pairs(d.assign(1_100).assignments), ["0@a"], "tried again after the back-off");
    assert.equal(d.isBlocked("a"), false);
  });

  it("equally loaded parents: a peer before a seed, then the one used least, so every parent gets work", () => {
    const stored = new Set<number>();
    const d = dispatcher({ concurrentPieces: 1, piecesPerParent: 1 }, stored);
    const seed = { ...parent("seed", range(0, 10)), isSeed: true };
    d.updateParents([seed, parent("x", range(0, 10)), parent("y", range(0, 10))]);
    const order: string[] = [];
    for (let next = d.assign(0).assignments[0]; next; next = d.assign(0).assignments[0]) {
      order.push(next.parent.peerId);
      stored.add(next.piece);
      d.release(next);
    }
    assert.deepEqual(order.slice(0, 4), ["x", "y", "x", "y"], "peers take turns while the seed is spared");
    assert.equal(order.length, 10);
  });

  it("says when a parent backing off may be asked again", () => {
    const d = dispatcher({ concurrentPieces: 2 });
    d.updateParents([parent("a", range(0, 10)), parent("b", range(0, 10))]);
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
    d.updateParents([parent("a", range(0, 10))]);
    const [a] = d.assign(0).assignments;
    d.release(a!);
    assert.equal(d.inFlightCount, 0);
    assert.deepEqual(pairs(d.assign(0).assignments), ["0@a"]);
  });
});
