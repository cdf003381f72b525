/**
 * One definition of an OCI blob URL (common/oci.ts), and the three places that
 * use it agree: the task ID is the digest, the default proxy rule sends the blob
 * through P2P (verified digests only), and the proxy answers with the digest header.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  DIGEST_HEX_LENGTH,
  blobUrlPattern,
  isVerifiedBlob,
  manifestByDigestUrlPattern,
  parseBlobPath,
  parseBlobUrl,
  parseManifestUrl,
} from "../../src/common/oci.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { DEFAULT_PROXY_RULES, defaultProxyPolicy } from "../../src/api/proxy-config.js";
import { ProxyPolicy } from "../../src/peer/proxy/rules.js";
import { digestHeaders } from "../../src/peer/proxy/p2p-response.js";

const H64 = "b2c366cce7e68013d5441c6326d5a3e1b12aeb5ed58564d0fd3fa089bc29cb6e";
const H128 = H64 + H64;

/** [url, what parseBlobUrl must say: undefined, or the algorithm and repository] */
const CASES: [string, { algorithm: string; repository: string } | undefined][] = [
  [`https://registry-1.docker.io/v2/library/ubuntu/blobs/sha256:${H64}`, { algorithm: "sha256", repository: "library/ubuntu" }],
  [`http://127.0.0.1:5000/v2/a/blobs/sha256:${H64}?ns=docker.io`, { algorithm: "sha256", repository: "a" }],
  [`http://[::1]:5000/v2/docker.io/library/x/blobs/sha256:${H64}`, { algorithm: "sha256", repository: "docker.io/library/x" }],
  [`https://user:pw@r.example/v2/a/b/blobs/sha256:${H64}?X-Amz-Signature=1&Expires=2`, { algorithm: "sha256", repository: "a/b" }],
  [`https://r.example/v2/a/blobs/sha256:${H64}#frag`, { algorithm: "sha256", repository: "a" }],
  [`https://r.example/v2/a/blobs/sha512:${H128}`, { algorithm: "sha512", repository: "a" }],
  // Not blobs, whatever an unanchored pattern would think:
  [`https://r.example/mirror/v2/a/blobs/sha256:${H64}`, undefined],
  [`https://r.example/x?u=/v2/a/blobs/sha256:${H64}`, undefined],
  [`https://r.example/x#/v2/a/blobs/sha256:${H64}`, undefined],
  [`https://r.example/v2/blobs/sha256:${H64}`, undefined],
  [`https://r.example/v2/a/blobs/sha256:${H64}/`, undefined],
  [`https://r.example/v2/a/blobs/sha256:${H64.toUpperCase()}`, undefined],
  [`https://r.example/v2/a/blobs/sha256:${H64}00`, undefined],
  [`https://r.example/v2/a/blobs/sha512:${H64}`, undefined],
  [`https://r.example/v2/a/blobs/md5:8a04994a666b4e4b20a2fd9e5a44f44c`, undefined],
  [`https://r.example/v2/a/manifests/sha256:${H64}`, undefined],
  [`https://r.example/v2/a/blobs/uploads/`, undefined],
];

describe("OCI blob URLs: one definition", () => {
  it("parseBlobUrl recognises exactly the blob URLs, with their repository and algorithm", () => {
    for (const [url, want] of CASES) {
      const blob = parseBlobUrl(url);
      if (!want) {
        assert.equal(blob, undefined, url);
        continue;
      }
      assert.equal(blob?.algorithm, want.algorithm, url);
      assert.equal(blob?.repository, want.repository, url);
      assert.equal(blob?.hex.length, DIGEST_HEX_LENGTH[blob!.algorithm]);
      assert.equal(blob?.digest, `${blob?.algorithm}:${blob?.hex}`);
      assert.deepEqual(parseBlobPath(new URL(url).pathname), blob);
    }
  });

  it("task IDs, the default P2P rule and the digest header agree on every case", () => {
    const policy = new ProxyPolicy(defaultProxyPolicy({ allowHosts: ["*"] }));
    for (const [url] of CASES) {
      const blob = parseBlobUrl(url);
      // The task is keyed by the digest exactly when the URL is a blob (any recognised algorithm).
      assert.equal(taskIdFor({ url }) === blob?.hex, blob !== undefined, `task ID of ${url}`);
      // Through P2P by default exactly when the blob's (or manifest's) digest is checked before it is served.
      const p2p = policy.decide(new URL(url), "GET").action === "p2p";
      const manifest = parseManifestUrl(new URL(url));
      const verifiedManifest = manifest?.kind === "digest" && manifest.algorithm === "sha256";
      assert.equal(p2p, isVerifiedBlob(blob) || verifiedManifest, `default rule for ${url}`);
      assert.equal(p2p, blob?.algorithm === "sha256" || verifiedManifest, `only sha256 content is verified, so only it goes P2P: ${url}`);
      // The proxy vouches for the digest of exactly those.
      assert.equal(digestHeaders(new URL(url))["docker-content-digest"], p2p ? blob?.digest : undefined, `digest header for ${url}`);
    }
  });

  it("the default rule is the pattern oci.ts makes, and that pattern can also cover sha512", () => {
    assert.deepEqual(DEFAULT_PROXY_RULES, [
      { regex: blobUrlPattern(), action: "p2p" },
      { regex: manifestByDigestUrlPattern(), action: "p2p" },
    ]);
    const both = new RegExp(blobUrlPattern(["sha256", "sha512"]));
    for (const [url] of CASES) assert.equal(both.test(new URL(url).toString()), parseBlobUrl(url) !== undefined, url);
  });
});

describe("OCI manifest URLs", () => {
  const MANIFESTS: [string, { kind: "digest" | "tag"; repository: string; reference: string } | undefined][] = [
    [`https://r.example/v2/library/ubuntu/manifests/sha256:${H64}`, { kind: "digest", repository: "library/ubuntu", reference: `sha256:${H64}` }],
    [`http://127.0.0.1:5000/v2/a/b/manifests/v1.2_rc-3?ns=docker.io`, { kind: "tag", repository: "a/b", reference: "v1.2_rc-3" }],
    [`https://r.example/v2/a/manifests/latest`, { kind: "tag", repository: "a", reference: "latest" }],
    [`https://r.example/v2/a/manifests/sha512:${H128}`, { kind: "digest", repository: "a", reference: `sha512:${H128}` }],
    [`https://r.example/v2/a/manifests/sha256:${H64}00`, undefined],
    [`https://r.example/v2/a/manifests/.hidden`, undefined],
    [`https://r.example/v2/a/manifests/${"t".repeat(129)}`, undefined],
    [`https://r.example/mirror/v2/a/manifests/latest`, undefined],
    [`https://r.example/v2/manifests/latest`, undefined],
    [`https://r.example/v2/a/blobs/sha256:${H64}`, undefined],
  ];

  it("parseManifestUrl tells digests from tags, and the default P2P rule takes exactly the sha256 digests", () => {
    const rule = new RegExp(manifestByDigestUrlPattern());
    for (const [url, want] of MANIFESTS) {
      const m = parseManifestUrl(new URL(url));
      if (!want) assert.equal(m, undefined, url);
      else {
        assert.equal(m?.kind, want.kind, url);
        assert.equal(m?.repository, want.repository, url);
        assert.equal(m?.kind === "digest" ? m.digest : m?.tag, want.reference, url);
      }
      assert.equal(rule.test(url), m?.kind === "digest" && m.algorithm === "sha256", `rule for ${url}`);
    }
  });
});
