/** Header rules shared by the CLI, the peer and the console: what reaches an origin, how a message rides in a header, how a `Name: value` line splits. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { headerDecode, headerEncode, isForwardable, splitHeaderLine } from "../../src/common/headers.js";

describe("headers", () => {
  it("splits a `Name: value` line at its first colon, trimmed; no colon or no name is not a header", () => {
    assert.deepEqual(splitHeaderLine("Authorization: Bearer a:b "), { name: "Authorization", value: "Bearer a:b" });
    assert.deepEqual(splitHeaderLine("X-Empty:"), { name: "X-Empty", value: "" });
    assert.equal(splitHeaderLine("nocolon"), undefined);
    assert.equal(splitHeaderLine(": value"), undefined);
    assert.equal(splitHeaderLine("   : value"), undefined);
  });

  it("hop-by-hop, Range and kiln's or Dragonfly's own headers never reach the origin", () => {
    for (const h of ["connection", "proxy-authorization", "range", "host", "x-dragonfly-tag", "x-kiln-local-copy"]) assert.equal(isForwardable(h), false, h);
    for (const h of ["authorization", "cookie", "accept"]) assert.equal(isForwardable(h), true, h);
  });

  it("a message with any character survives a header and comes back", () => {
    const message = "piece 3: digest ünmatched\r\nX-Injected: 1 \uD800";
    const encoded = headerEncode(message);
    assert.match(encoded, /^[\x21-\x7e]*$/, "only visible ASCII: no header injection");
    assert.equal(headerDecode(encoded), message.replace("\uD800", "\uFFFD"));
  });
});
