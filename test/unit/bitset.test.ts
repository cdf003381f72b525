import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BitSet } from "../../src/common/bitset.js";

const setOf = (members: number[]) => {
  const b = new BitSet();
  for (const n of members) b.add(n);
  return b;
};

describe("BitSet", () => {
  it("countNotIn counts the members the other set lacks, whatever the sizes", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(300)), fc.array(fc.nat(300)), (a, b) => {
        const other = new Set(b);
        const expected = new Set(a.filter((n) => !other.has(n))).size;
        assert.equal(setOf(a).countNotIn(setOf(b)), expected);
      }),
      { numRuns: 300 },
    );
  });

  it("survives the wire: fromBase64(toBase64) holds the same members", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(2000)), (a) => {
        const back = BitSet.fromBase64(setOf(a).toBase64());
        assert.deepEqual(
          [...back],
          [...new Set(a)].sort((x, y) => x - y),
        );
        assert.equal(back.size, new Set(a).size);
      }),
    );
  });
});
