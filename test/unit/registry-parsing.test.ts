import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseChallenges } from "../../src/registry/challenge.js";
import { parseManifestUrl, blobUrl, manifestUrl } from "../../src/registry/reference.js";
import { parseManifest, pickPlatform, parsePlatform, availablePlatforms, type ImageIndex } from "../../src/registry/manifest.js";
import { MEDIA_TYPES } from "../../src/registry/media-types.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe("WWW-Authenticate challenges", () => {
  it("parses Docker Hub's bearer challenge", () => {
    const [c] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"');
    assert.deepEqual(c, {
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/alpine:pull" },
    });
  });
  it("parses basic, unquoted values, escapes and several challenges", () => {
    assert.deepEqual(parseChallenges('Basic realm="kiln test"'), [{ scheme: "basic", params: { realm: "kiln test" } }]);
    const cs = parseChallenges('Basic realm=x, Bearer realm="a\\"b",error="invalid_token"');
    assert.equal(cs.length, 2);
    assert.deepEqual(cs[1], { scheme: "bearer", params: { realm: 'a"b', error: "invalid_token" } });
    assert.deepEqual(parseChallenges(""), []);
  });
});

describe("manifest URLs", () => {
  it("splits registry, repository and reference; derives blob URLs", () => {
    const r = parseManifestUrl("https://index.docker.io/v2/library/alpine/manifests/3.19");
    assert.deepEqual(r, { origin: "https://index.docker.io", repository: "library/alpine", reference: "3.19", search: "" });
    assert.equal(blobUrl(r, d("a")), `https://index.docker.io/v2/library/alpine/blobs/${d("a")}`);
    assert.equal(manifestUrl(r, d("b")), `https://index.docker.io/v2/library/alpine/manifests/${d("b")}`);
    assert.equal(parseManifestUrl(`http://127.0.0.1:5000/v2/a/b/c/manifests/${d("c")}`).reference, d("c"));
  });
  it("refuses what is not a manifest URL, naming the problem", () => {
    assert.throws(() => parseManifestUrl("https://x/v2/alpine/blobs/sha256:00"), /not an image manifest URL/);
    assert.throws(() => parseManifestUrl("https://x/v2/Alpine/manifests/1"), /invalid repository name/);
    assert.throws(() => parseManifestUrl("ftp://x/v2/a/manifests/1"), /must be http/);
    assert.throws(() => parseManifestUrl("nope"), /not a URL/);
  });
});

describe("manifests and platforms", () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      { digest: d("1"), size: 1, platform: { os: "linux", architecture: "amd64" } },
      { digest: d("2"), size: 1, platform: { os: "linux", architecture: "arm", variant: "v6" } },
      { digest: d("3"), size: 1, platform: { os: "linux", architecture: "arm", variant: "v7" } },
      { digest: d("4"), size: 1, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      { digest: d("5"), size: 1, platform: { os: "unknown", architecture: "unknown" } },
    ],
  };
  it("picks by os/arch, variant when asked, arm64 = arm64/v8", () => {
    assert.equal(pickPlatform(index, parsePlatform("linux/amd64"))?.digest, d("1"));
    assert.equal(pickPlatform(index, parsePlatform("linux/arm/v7"))?.digest, d("3"));
    assert.equal(pickPlatform(index, parsePlatform("linux/arm"))?.digest, d("2"));
    assert.equal(pickPlatform(index, parsePlatform("linux/arm64"))?.digest, d("4"));
    assert.equal(pickPlatform(index, parsePlatform("linux/s390x")), undefined);
    assert.deepEqual(availablePlatforms(index), ["linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64/v8"]);
  });
  it("tells indexes from manifests by content type, mediaType or shape; refuses schema 1", () => {
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: d("c"), size: 2 }, layers: [{ digest: d("e"), size: 3 }] }));
    assert.equal(parseManifest(MEDIA_TYPES.dockerManifest, m, "x").kind, "manifest");
    assert.equal(parseManifest("application/octet-stream", m, "x").kind, "manifest");
    const i = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] }));
    assert.equal(parseManifest("", i, "x").kind, "index");
    assert.equal(parseManifest(MEDIA_TYPES.dockerManifestList, Buffer.from('{"schemaVersion":2,"manifests":[]}'), "x").kind, "index");
    assert.throws(() => parseManifest(MEDIA_TYPES.dockerSchema1, Buffer.from('{"schemaVersion":1}'), "x"), /schema 1/);
    assert.throws(() => parseManifest("", Buffer.from("{"), "img"), /img: manifest is not JSON/);
    assert.throws(() => parseManifest(MEDIA_TYPES.ociManifest, Buffer.from('{"schemaVersion":2}'), "img"), /malformed image manifest/);
  });
});
