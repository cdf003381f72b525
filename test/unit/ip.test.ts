/** src/common/ip.ts reads IP addresses exactly as node:net's isIP does (the API's schemas use it, also in the browser). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { ipVersion } from "../../src/common/ip.js";

describe("ipVersion", () => {
  it("agrees with node:net isIP on known cases", () => {
    const cases = ["1.2.3.4", "01.2.3.4", "255.255.255.255", "256.1.1.1", "::", "::1", "fe80::1%eth0", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8"];
    const more = ["1:2:3:4:5:6:7:8:9", "1::2::3", "", "abc", "[::1]", "1.2.3", " 1.2.3.4", "1.2.3.4 ", "::1%", "1:2:3:4:5:6:1.2.3.4"];
    for (const c of [...cases, ...more]) assert.equal(ipVersion(c), isIP(c), JSON.stringify(c));
  });

  it("agrees with node:net isIP on generated addresses and strings", () => {
    const arb = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string(), fc.stringMatching(/^[0-9a-fA-F:.%]{0,45}$/));
    fc.assert(
      fc.property(arb, (s) => ipVersion(s) === isIP(s)),
      { numRuns: 20_000 },
    );
  });
});
