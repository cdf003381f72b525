/** Registry mirror mode: which upstream a `/v2/...` request goes to. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { KilnError } from "../../src/common/errors.js";
import { mirrorUpstream } from "../../src/peer/proxy/mirror-upstream.js";

describe("registry mirror upstream", () => {
  const cfg = { defaultRegistry: "https://registry.example.com:5000" };

  it("X-Dragonfly-Registry first, then ns=, then --registry", () => {
    assert.equal(mirrorUpstream("http://other.example:8080/ignored/path", "ns.example", cfg), "http://other.example:8080");
    assert.equal(mirrorUpstream("  ", "ns.example", cfg), "https://ns.example", "a blank header counts as none");
    assert.equal(mirrorUpstream(undefined, undefined, cfg), "https://registry.example.com:5000");
  });

  it("a host without a scheme: the default registry's scheme for it, plain HTTP for loopback or --registry-insecure, else HTTPS", () => {
    const plain = { defaultRegistry: "http://registry.example.com:5000" };
    assert.equal(mirrorUpstream(undefined, "registry.example.com:5000", plain), "http://registry.example.com:5000");
    assert.equal(mirrorUpstream(undefined, "127.0.0.1:5000", {}), "http://127.0.0.1:5000");
    assert.equal(mirrorUpstream(undefined, "reg.internal", { insecure: true }), "http://reg.internal");
    assert.equal(mirrorUpstream("reg.internal:5000", undefined, {}), "https://reg.internal:5000");
    assert.equal(mirrorUpstream(undefined, "docker.io", {}), "https://registry-1.docker.io");
  });

  it("a registry that is not http(s) nor a host[:port]: 400 naming where it came from, never guessed as a host", () => {
    // Was: "ftp://files.example" taken for a host name, upstream https://ftp.
    const refused = (source: RegExp, why: RegExp) => (e: KilnError) => e.status === 400 && source.test(e.message) && why.test(e.message);
    assert.throws(
      () => mirrorUpstream("ftp://files.example", undefined, cfg),
      refused(/invalid registry "ftp:\/\/files\.example" in the X-Dragonfly-Registry header/, /http:\/\/ or https:\/\/, not ftp:\/\//),
    );
    assert.throws(() => mirrorUpstream(undefined, "ftp://files.example", cfg), refused(/in the ns= query parameter/, /not ftp:\/\//));
    for (const bad of ["files.example/path", "ftp:files.example", "host:port", "a b"]) {
      assert.throws(() => mirrorUpstream(bad, undefined, {}), refused(/X-Dragonfly-Registry header/, /http\(s\):\/\/ URL or a host\[:port\]/), bad);
    }
    assert.equal(mirrorUpstream("HTTPS://Other.Example", undefined, {}), "https://other.example", "scheme and host in any case");
    assert.equal(mirrorUpstream("[::1]:5000", undefined, {}), "http://[::1]:5000");
  });

  it("no registry at all, or one that is not a URL: 400 naming the way to fix it", () => {
    const namesTheFix = (e: KilnError) => e.status === 400 && /X-Dragonfly-Registry or \?ns=<host>/.test(e.message);
    assert.throws(() => mirrorUpstream(undefined, undefined, {}), namesTheFix);
    assert.throws(
      () => mirrorUpstream("http://[bad", undefined, {}),
      (e: KilnError) => e.status === 400 && /invalid registry "http:\/\/\[bad"/.test(e.message),
    );
  });
});
