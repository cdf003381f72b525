import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { IndexedSet } from "../../src/common/indexed-set.js";

describe("IndexedSet", () => {
  it("holds what a Set would after any adds and deletes, at dense positions", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(50))), (ops) => {
        const set = new IndexedSet<number>();
        const model = new Set<number>();
        for (const [add, x] of ops) {
          if (add) {
            set.add(x);
            model.add(x);
          } else {
            assert.equal(set.delete(x), model.delete(x));
          }
        }
        assert.equal(set.size, model.size);
        assert.deepEqual(
          [...set].sort((a, b) => a - b),
          [...model].sort((a, b) => a - b),
        );
        const positions = [...model].map((x) => set.indexOf(x)!).sort((a, b) => a - b);
        assert.deepEqual(positions, [...Array(model.size).keys()], "positions are 0..size-1");
        for (const x of model) assert.ok(set.has(x));
      }),
      { numRuns: 300 },
    );
  });

  it("randomOrder yields every member exactly once, small or large, and leaves the set as it was", () => {
    for (const n of [0, 1, 5, 64, 65, 300]) {
      const set = new IndexedSet<number>();
      for (let i = 0; i < n; i++) set.add(i);
      const before = [...set];
      const drawn = [...set.randomOrder()];
      assert.equal(drawn.length, n);
      assert.deepEqual(
        [...drawn].sort((a, b) => a - b),
        before,
      );
      assert.deepEqual([...set], before, "members keep their positions");
    }
  });

  it("taking a few members of a large set costs a few draws, not one per member", () => {
    const set = new IndexedSet<number>();
    for (let i = 0; i < 100_000; i++) set.add(i);
    let calls = 0;
    const counting = () => (calls++, Math.random());
    const taken: number[] = [];
    for (const x of set.randomOrder(counting)) {
      taken.push(x);
      if (taken.length === 40) break;
    }
    assert.equal(new Set(taken).size, 40);
    assert.ok(calls < 60, `${calls} draws for 40 members of 100,000`);
  });

  it("randomOrder spreads its picks: over many rounds every member of a large set comes first at some point", () => {
    const set = new IndexedSet<number>();
    for (let i = 0; i < 100; i++) set.add(i);
    const firsts = new Set<number>();
    for (let round = 0; round < 5_000; round++) firsts.add(set.randomOrder().next().value as number);
    assert.equal(firsts.size, 100);
  });
});
