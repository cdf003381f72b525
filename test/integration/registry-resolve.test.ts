/**
 * The OCI distribution client against Debian's docker-registry: no auth, basic,
 * anonymous bearer and bearer with credentials; OCI and Docker v2 media types;
 * multi-arch platform pick; digest checks; causes named on failure.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { resolveImage } from "../../src/registry/resolve.js";
import { buildOciImage, freePort, pushImage, registryToolsMissing, startRegistry, type BuiltImage, type TestRegistry } from "../helpers/registry.js";
import { REGISTRY_PASSWORD, REGISTRY_USER } from "../helpers/registry-fixtures.js";

const creds = { username: REGISTRY_USER, password: REGISTRY_PASSWORD };

async function fetchBlob(url: string, headers: Record<string, string>): Promise<string> {
  const r = await fetch(url, { headers });
  assert.equal(r.status, 200, `GET ${url}`);
  return (
    "sha256:" +
    createHash("sha256")
      .update(Buffer.from(await r.arrayBuffer()))
      .digest("hex")
  );
}

describe("registry client", () => {
  let skip: string | undefined;
  const registries: Partial<Record<"none" | "basic" | "token-anonymous" | "token-credentials", TestRegistry>> = {};
  let multi: BuiltImage;
  let single: BuiltImage;

  before(async () => {
    skip = await registryToolsMissing();
    if (skip) return;
    multi = await buildOciImage({ platforms: ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], layers: 1, layerBytes: 16 * 1024 });
    single = await buildOciImage({ platforms: ["linux/amd64"], layers: 2, layerBytes: 16 * 1024 });
    await Promise.all(
      (["none", "basic", "token-anonymous", "token-credentials"] as const).map(async (auth) => {
        const reg = await startRegistry(auth);
        registries[auth] = reg;
        await pushImage(single, reg, "lib/single");
      }),
    );
    await pushImage(multi, registries.none!, "lib/multi-oci");
    await pushImage(multi, registries.none!, "lib/multi-docker", "docker");
    await pushImage(single, registries.none!, "lib/single-docker", "docker");
  });

  after(async () => {
    await Promise.all(Object.values(registries).map((r) => r.stop()));
    await multi?.cleanup();
    await single?.cleanup();
  });

  it("resolves a single-arch OCI image to its config and layers, in order", async (t) => {
    if (skip) return t.skip(skip);
    const reg = registries.none!;
    const r = await resolveImage(`${reg.url}/v2/lib/single/manifests/v1`);
    const p = single.platforms["linux/amd64"]!;
    assert.equal(r.manifestDigest, p.manifest);
    assert.equal(r.platform, undefined);
    assert.deepEqual(
      r.blobUrls,
      [p.config, ...p.layers].map((d) => `${reg.url}/v2/lib/single/blobs/${d}`),
    );
    assert.deepEqual(r.headers, {});
    for (const [i, url] of r.blobUrls.entries()) assert.equal(await fetchBlob(url, r.headers), [p.config, ...p.layers][i]);
  });

  it("picks the platform from an OCI index and from a Docker manifest list (default linux/amd64)", async (t) => {
    if (skip) return t.skip(skip);
    const reg = registries.none!;
    const oci = await resolveImage(`${reg.url}/v2/lib/multi-oci/manifests/v1`);
    assert.equal(oci.platform, "linux/amd64");
    assert.equal(oci.manifestDigest, multi.platforms["linux/amd64"]!.manifest);
    assert.equal(oci.indexDigest, multi.digest);
    const arm = await resolveImage(`${reg.url}/v2/lib/multi-oci/manifests/v1`, { platform: "linux/arm/v7" });
    assert.equal(arm.config.digest, multi.platforms["linux/arm/v7"]!.config);
    // Docker media types: skopeo converted the manifests, so the digests differ but config and layers do not.
    const docker = await resolveImage(`${reg.url}/v2/lib/multi-docker/manifests/v1`, { platform: "linux/arm64" });
    assert.equal(docker.platform, "linux/arm64/v8");
    assert.equal(docker.config.mediaType, "application/vnd.docker.container.image.v1+json");
    assert.equal(docker.layers[0]!.digest, multi.platforms["linux/arm64/v8"]!.layers[0]);
    const dockerSingle = await resolveImage(`${reg.url}/v2/lib/single-docker/manifests/v1`);
    assert.equal(dockerSingle.layers.length, 2);
    // By digest: the manifest is checked against it.
    const pinned = await resolveImage(`${reg.url}/v2/lib/multi-oci/manifests/${multi.digest}`, { platform: "linux/arm64/v8" });
    assert.equal(pinned.manifestDigest, multi.platforms["linux/arm64/v8"]!.manifest);
  });

  it("answers basic auth, anonymous bearer and bearer with credentials; the blob headers carry the auth", async (t) => {
    if (skip) return t.skip(skip);
    const p = single.platforms["linux/amd64"]!;
    for (const [auth, opts] of [
      ["basic", creds],
      ["token-anonymous", {}],
      ["token-credentials", creds],
    ] as const) {
      const reg = registries[auth]!;
      const r = await resolveImage(`${reg.url}/v2/lib/single/manifests/v1`, opts);
      assert.equal(r.manifestDigest, p.manifest, auth);
      assert.match(r.headers.Authorization!, auth === "basic" ? /^Basic / : /^Bearer /);
      assert.equal(await fetchBlob(r.blobUrls[1]!, r.headers), p.layers[0]);
      const anonymous = await fetch(r.blobUrls[1]!);
      if (auth !== "token-anonymous") assert.equal(anonymous.status, 401);
    }
  });

  it("names the cause: missing or wrong credentials, unknown tag, missing platform, unreachable registry", async (t) => {
    if (skip) return t.skip(skip);
    const url = (auth: keyof typeof registries, path = "lib/single/manifests/v1") => `${registries[auth]!.url}/v2/${path}`;
    await assert.rejects(resolveImage(url("basic")), /requires a username and password \(401 Unauthorized, basic auth\)/);
    await assert.rejects(resolveImage(url("basic"), { ...creds, password: "nope" }), /refused access \(401 Unauthorized\): check the username and password/);
    await assert.rejects(resolveImage(url("token-credentials")), /token service 127\.0\.0\.1:\d+ answered 401 Unauthorized: credentials required/);
    await assert.rejects(resolveImage(url("token-credentials"), { ...creds, password: "nope" }), /answered 401 Unauthorized: check the username and password/);
    await assert.rejects(resolveImage(url("none", "lib/single/manifests/v9")), /lib\/single:v9: tag not found in the registry \(404: MANIFEST_UNKNOWN/);
    await assert.rejects(
      resolveImage(url("none", "lib/nothing/manifests/v1")),
      /lib\/nothing:v1: tag not found in the registry \(404: (NAME|MANIFEST)_UNKNOWN/,
    );
    await assert.rejects(
      resolveImage(url("none", "lib/multi-oci/manifests/v1"), { platform: "windows/amd64" }),
      /platform windows\/amd64 is not in the image index \(available: linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7\)/,
    );
    const closed = await freePort();
    await assert.rejects(resolveImage(`http://127.0.0.1:${closed}/v2/a/manifests/1`), /registry 127\.0\.0\.1:\d+ is unreachable: connection refused/);
  });

  it("refuses a manifest whose bytes do not match the digest asked for or announced", async (t) => {
    if (skip) return t.skip(skip);
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { digest: `sha256:${"a".repeat(64)}`, size: 1 },
      layers: [],
    });
    const asked = `sha256:${"b".repeat(64)}`;
    const server = http.createServer((req, res) => {
      const announced = req.url!.includes("announced") ? { "docker-content-digest": `sha256:${"c".repeat(64)}` } : {};
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json", ...announced }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      await assert.rejects(resolveImage(`${base}/v2/lib/x/manifests/${asked}`), /manifest digest is sha256:[0-9a-f]{64}, not the requested sha256:b{64}/);
      await assert.rejects(resolveImage(`${base}/v2/lib/announced/manifests/v1`), /but the registry announced sha256:c{64}/);
      const ok = await resolveImage(`${base}/v2/lib/x/manifests/v1`);
      assert.equal(ok.layers.length, 0);
    } finally {
      server.close();
    }
  });
});
