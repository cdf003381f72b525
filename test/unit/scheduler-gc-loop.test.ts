/** The scheduler's GC loop does not judge hosts right after the scheduler itself was stalled. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mayCollect } from "../../src/scheduler/gc-loop.js";

describe("scheduler GC loop", () => {
  it("a round on time, or somewhat late, collects", () => {
    assert.equal(mayCollect(0, 1_000, 1_000), true);
    assert.equal(mayCollect(0, 2_900, 1_000), true);
  });

  it("a round that comes 3 intervals late or more is skipped: keepalives sent meanwhile are still unread", () => {
    assert.equal(mayCollect(0, 3_001, 1_000), false);
    assert.equal(mayCollect(0, 15_000, 1_000), false);
  });
});
