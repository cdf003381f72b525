/** Piece math, piece bitmaps on the wire, and Range parsing of the upload/proxy servers. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { KilnError } from "../../src/common/errors.js";
import { defaultPieceLength, pieceCount, pieceRange, validateExplicitPieceLength } from "../../src/common/piece.js";
import { BitSet } from "../../src/common/bitset.js";
import { parseRange } from "../../src/peer/http-util.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe("defaultPieceLength", () => {
  it("unknown or empty content gets 4 MiB", () => {
    assert.equal(defaultPieceLength(undefined), 4 * MiB);
    assert.equal(defaultPieceLength(0), 4 * MiB);
  });

  it("small content is clamped up to 4 MiB", () => {
    assert.equal(defaultPieceLength(1), 4 * MiB);
    assert.equal(defaultPieceLength(64 * MiB), 4 * MiB);
    assert.equal(defaultPieceLength(500 * 4 * MiB), 4 * MiB); // exactly 4 MiB per piece
  });

  it("content / 500 rounded up to a power of two", () => {
    assert.equal(defaultPieceLength(500 * 4 * MiB + 1), 8 * MiB);
    assert.equal(defaultPieceLength(500 * 8 * MiB), 8 * MiB);
    assert.equal(defaultPieceLength(500 * 8 * MiB + 1), 16 * MiB);
    assert.equal(defaultPieceLength(10 * GiB), 32 * MiB); // 10 GiB / 500 = 20.48 MiB → 32 MiB
    assert.equal(defaultPieceLength(500 * 32 * MiB), 32 * MiB);
  });

  it("huge content is clamped down to 64 MiB", () => {
    assert.equal(defaultPieceLength(500 * 64 * MiB + 1), 64 * MiB);
    assert.equal(defaultPieceLength(1024 * GiB), 64 * MiB);
  });

  it("property: a power of two in [4 MiB, 64 MiB] giving about 500 pieces or fewer unless clamped", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 45 }), (len) => {
        const p = defaultPieceLength(len);
        assert.ok(p >= 4 * MiB && p <= 64 * MiB);
        assert.equal(p & (p - 1), 0, "power of two");
        if (p < 64 * MiB) assert.ok(pieceCount(len, p) <= 500, `${len} → ${p}: ${pieceCount(len, p)} pieces`);
        if (p > 4 * MiB) assert.ok(len / (p / 2) > 500, "the next smaller power of two would give more than 500 pieces");
      }),
      { numRuns: 2000 },
    );
  });
});

describe("validateExplicitPieceLength", () => {
  it("accepts 4 MiB .. 1024 MiB inclusive", () => {
    for (const ok of [4 * MiB, 4 * MiB + 1, 16 * MiB, 1000 * MiB, 1024 * MiB]) assert.equal(validateExplicitPieceLength(ok), ok);
  });

  it("rejects out-of-range and non-integer lengths with BAD_REQUEST naming the bounds", () => {
    for (const bad of [0, -1, 4 * MiB - 1, 1024 * MiB + 1, 4 * MiB + 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 * GiB]) {
      assert.throws(
        () => validateExplicitPieceLength(bad),
        (e: unknown) => e instanceof KilnError && e.code === "BAD_REQUEST" && e.status === 400 && /4194304/.test(e.message) && /1073741824/.test(e.message),
        String(bad),
      );
    }
  });
});

describe("pieceCount / pieceRange", () => {
  it("counts pieces, last piece short", () => {
    assert.equal(pieceCount(0, 4 * MiB), 0);
    assert.equal(pieceCount(1, 4 * MiB), 1);
    assert.equal(pieceCount(4 * MiB, 4 * MiB), 1);
    assert.equal(pieceCount(4 * MiB + 1, 4 * MiB), 2);
    assert.deepEqual(pieceRange(0, 10, 4), { start: 0, end: 4 });
    assert.deepEqual(pieceRange(2, 10, 4), { start: 8, end: 10 });
  });

  it("property: pieces tile the content exactly, in order, without gaps or overlap", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 1, max: 1_000_000 }), (len, pl) => {
        const n = pieceCount(len, pl);
        let pos = 0;
        for (let i = 0; i < n; i++) {
          const r = pieceRange(i, len, pl);
          assert.equal(r.start, pos);
          assert.ok(r.end > r.start && r.end - r.start <= pl);
          if (i < n - 1) assert.equal(r.end - r.start, pl);
          pos = r.end;
        }
        assert.equal(pos, len);
      }),
      { numRuns: 300 },
    );
  });
});

describe("BitSet", () => {
  it("round-trips through base64", () => {
    const b = new BitSet();
    for (const n of [0, 7, 8, 9, 100, 4999]) b.add(n);
    b.add(100); // idempotent
    assert.equal(b.size, 6);
    const back = BitSet.fromBase64(b.toBase64());
    assert.equal(back.size, 6);
    assert.deepEqual([...back], [0, 7, 8, 9, 100, 4999]);
    assert.ok(back.has(4999) && !back.has(4998) && !back.has(100_000));
  });

  it("an empty set and an empty string", () => {
    assert.equal(new BitSet().toBase64(), "");
    assert.equal(BitSet.fromBase64("").size, 0);
    assert.deepEqual([...BitSet.fromBase64("")], []);
    assert.equal(new BitSet(100).size, 0);
  });

  it("10,000 pieces cost ~1.7 KB of base64 on the wire, as bitset.ts promises", () => {
    // Regression test (this was a bug): the scheduler builds every peer's bitmap with `new BitSet()` + add(); add()
    // grows the buffer by doubling and toBase64() sends the whole buffer, trailing
    // zero bytes included. Expected: 10,000 pieces → 1,250 bytes → 1,668 base64 chars
    // (the "~1.7 KB" of the class comment). Actual: 2,048 bytes → 2,732 chars, in every
    // parent entry of every schedule reply.
    const b = new BitSet();
    for (let i = 0; i < 10_000; i++) b.add(i);
    assert.equal(BitSet.fromBase64(b.toBase64()).size, 10_000);
    assert.ok(b.toBase64().length <= Math.ceil(1250 / 3) * 4, `${b.toBase64().length} base64 characters for 10,000 pieces`);
  });

  it("property: any set of piece numbers survives the wire", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 20_000 }), { maxLength: 300 }), (nums) => {
        const b = new BitSet();
        for (const n of nums) b.add(n);
        const back = BitSet.fromBase64(b.toBase64());
        assert.equal(back.size, nums.length);
        assert.deepEqual(
          [...back],
          [...nums].sort((x, y) => x - y),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe("parseRange", () => {
  it("no header means the whole body", () => {
    assert.equal(parseRange(undefined, 100), undefined);
    assert.equal(parseRange("", 100), undefined);
  });

  it("bytes=a-b, bytes=a-, bytes=-n (end exclusive in the result)", () => {
    assert.deepEqual(parseRange("bytes=0-99", 100), { start: 0, end: 100 });
    assert.deepEqual(parseRange("bytes=10-19", 100), { start: 10, end: 20 });
    assert.deepEqual(parseRange("bytes=10-", 100), { start: 10, end: 100 });
    assert.deepEqual(parseRange("bytes=-10", 100), { start: 90, end: 100 });
    assert.deepEqual(parseRange("bytes=-1000", 100), { start: 0, end: 100 }, "suffix longer than the body");
    assert.deepEqual(parseRange("bytes=50-1000", 100), { start: 50, end: 100 }, "end past the body is clamped");
    assert.deepEqual(parseRange(" bytes=1-1 ", 100), { start: 1, end: 2 });
  });

  it("unsatisfiable ranges are 'invalid' (416)", () => {
    for (const h of ["bytes=100-", "bytes=100-200", "bytes=-0"]) assert.equal(parseRange(h, 100), "invalid", h);
    assert.equal(parseRange("bytes=0-", 0), "invalid", "nothing to serve from an empty body");
  });

  it("a header that is not one valid byte range is ignored: the whole body, as RFC 9110 says", () => {
    for (const h of ["bytes=20-10", "bytes=5-1", "bytes=-", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes= 0-1", "bytes=1.5-2"]) {
      assert.equal(parseRange(h, 100), undefined, h);
    }
  });

  it("property: a valid answer is always inside the body and non-empty", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.option(fc.nat(2000)), fc.option(fc.nat(2000)), (len, a, b) => {
        if (a === null && b === null) return;
        const r = parseRange(`bytes=${a ?? ""}-${b ?? ""}`, len);
        if (a !== null && b !== null && b < a) return assert.equal(r, undefined, "an inverted range is ignored");
        if (r === undefined) assert.fail("a valid range was given");
        if (r === "invalid") return;
        assert.ok(0 <= r.start && r.start < r.end && r.end <= len, JSON.stringify({ len, a, b, r }));
        if (a !== null) assert.equal(r.start, a);
        if (a !== null && b !== null) assert.equal(r.end, Math.min(len, b + 1));
        if (a === null) assert.equal(r.end, len);
      }),
      { numRuns: 1000 },
    );
  });
});
