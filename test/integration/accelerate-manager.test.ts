/**
 * Image acceleration through the manager: the Open API routes (token scope `job`) and
 * the console API routes (session) run the seed's enable/get/create/delete on the
 * shared directory the manager mounts (KILN_ACCELERATE_SHARED).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { RunningManager } from "../../src/manager/index.js";
import { richLayers } from "../helpers/accel-image.js";
import { buildLayeredImage, type LayeredImage } from "../helpers/layer-tar.js";
import { api, createToken, ROOT_PASSWORD, startTestManager } from "../helpers/manager.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { pushImage, startRegistry, type TestRegistry } from "../helpers/registry.js";
import { unmount } from "../helpers/rootfs.js";

const run = promisify(execFile);

describe("image acceleration on the manager's APIs", async () => {
  const skip = await prerequisitesMissing(
    "accelerate manager test",
    { "docker-registry": "docker-registry", skopeo: "skopeo", setfattr: "attr", busybox: "busybox-static" },
    process.getuid?.() === 0 ? [] : ["unpacking layers (owners, devices, trusted xattrs) and bind mounts need root"],
  );
  let dir: string;
  let shared: string;
  let reg: TestRegistry;
  let image: LayeredImage;
  let m: RunningManager;
  let snap: KilnProcess;
  let jobToken: string;
  let clusterToken: string;
  let session: string;
  let oapi: string;

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-accel-mgr-"));
    shared = join(dir, "shared");
    await mkdir(shared);
    await run("mount", ["--bind", shared, shared]);
    process.env.KILN_ACCELERATE_SHARED = shared;
    image = await buildLayeredImage(richLayers());
    reg = await startRegistry("none");
    await pushImage(image, reg, "test/rich");
    m = await startTestManager(`sqlite:${join(dir, "manager.db")}`);
    oapi = `${m.url}/oapi/v1/image-accelerate`;
    jobToken = (await createToken(m.url, ["job"])).token;
    clusterToken = (await createToken(m.url, ["cluster"])).token;
    session = (await api(`${m.url}/api/v1/users/signin`, { body: { name: "root", password: ROOT_PASSWORD } })).json.token as string;
    // A node's snapshotter reporting on the shared directory (AgentReady).
    snap = await spawnKiln([
      "snapshotter",
      "--root",
      join(dir, "snap"),
      "--address",
      join(dir, "snap.sock"),
      "--shared",
      shared,
      "--node-name",
      "node-1",
      "--log-format",
      "json",
    ]);
  });

  after(async () => {
    delete process.env.KILN_ACCELERATE_SHARED;
    await snap?.kill();
    await m?.close();
    await Promise.all([reg?.stop(), image?.cleanup()]);
    if (shared) await unmount(shared);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("needs a job-scope token on the Open API and a session on the console API", { skip }, async () => {
    assert.equal((await api(oapi)).status, 401);
    assert.equal((await api(oapi, { token: clusterToken })).status, 403);
    assert.equal((await api(`${m.url}/api/v1/image-accelerate`)).status, 401);
    const got = await api(`${m.url}/api/v1/image-accelerate`, { token: session });
    assert.equal(got.status, 200, JSON.stringify(got.json));
    assert.equal(got.json.NfsReady, true);
    assert.equal(got.json.Enable, false);
    const doc = await api(`${m.url}/oapi/v1/openapi.json`);
    assert.ok(doc.json.paths["/oapi/v1/image-accelerate/images"], "documented in the Open API");
  });

  it("enable, create (202 Creating, then Ready), a second create meanwhile is 409, delete", { skip }, async () => {
    const original = `${reg.host}/test/rich:${image.tag}`;
    const notYet = await api(`${oapi}/images`, { token: jobToken, body: { original, plain_http: true } });
    assert.equal(notYet.status, 422, "create before enable");
    assert.match(notYet.json.message, /not enabled/);
    const enabled = await api(`${oapi}/enable`, { token: jobToken, method: "POST" });
    assert.equal(enabled.status, 200, JSON.stringify(enabled.json));
    assert.equal(enabled.json.Enable, true);

    const bad = await api(`${oapi}/images`, { token: jobToken, body: { original: "not an image", plain_http: true } });
    assert.equal(bad.status, 422, "the manager's status for a body that fails validation");
    assert.match(bad.json.message, /original/);
    const started = await api(`${oapi}/images`, { token: jobToken, body: { original, plain_http: true } });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    assert.equal(started.json.Status, "Creating");
    assert.deepEqual(started.json.Images, []);
    const second = await api(`${oapi}/images`, { token: jobToken, body: { original, plain_http: true } });
    assert.equal(second.status, 409);
    assert.match(second.json.message, /a create of .* is running/);

    let view = started.json;
    for (const deadline = Date.now() + 60_000; view.Status === "Creating" && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 200));
      view = (await api(oapi, { token: jobToken })).json;
    }
    assert.equal(view.Status, "Ready", JSON.stringify(view));
    assert.deepEqual(view.Images, [{ OriginalImage: original, TargetImage: `${original}-acc`, Size: image.size, Layers: 3 }]);
    assert.deepEqual(view.Nodes, ["node-1"]);
    assert.equal((await readdir(join(shared, "layers"))).length, 3);

    const deleted = await api(`${oapi}/images?original=${encodeURIComponent(original)}`, { token: jobToken, method: "DELETE" });
    assert.equal(deleted.status, 200, JSON.stringify(deleted.json));
    assert.deepEqual(deleted.json.Images, []);
    assert.deepEqual(await readdir(join(shared, "layers")), []);
    const gone = await api(`${oapi}/images?original=${encodeURIComponent(original)}`, { token: jobToken, method: "DELETE" });
    assert.equal(gone.status, 404);
  });
});
