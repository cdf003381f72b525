/** The `get` answer from what is on the shared directory: the seed's statuses, and when Images is forced empty. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { getView, remove } from "../../src/accelerate/service.js";
import { withOperation, writeState } from "../../src/accelerate/state.js";
import type { AccelerateState, NodeReport } from "../../src/api/accelerate.js";

const chain = (c: string) => `sha256:${c.repeat(64)}`;
const image = {
  original: "reg.example.com/team/app:v1",
  target: "reg.example.com/team/app:v1-acc",
  size: 1234,
  chainIds: [chain("a"), chain("b")],
  manifestDigest: chain("c"),
  targetDigest: chain("d"),
  createdAt: "2026-01-01T00:00:00.000Z",
};

async function sharedDir(state: AccelerateState, reports: NodeReport[] = []): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "kiln-accel-state-"));
  await mkdir(join(d, "nodes"), { recursive: true });
  await mkdir(join(d, "layers", "a".repeat(64)), { recursive: true });
  await mkdir(join(d, "layers", "b".repeat(64)), { recursive: true });
  await writeState(d, state);
  for (const r of reports) await writeFile(join(d, "nodes", `${r.node}.json`), JSON.stringify(r));
  return d;
}

const report = (node: string, layers: NodeReport["layers"] = [], updatedAt = new Date().toISOString()): NodeReport => ({ node, updatedAt, layers });

describe("accelerate get", () => {
  it("Ready with the image list when a node reported recently; Unknown and no images when none did", async () => {
    const d = await sharedDir({ enabled: true, images: [image] }, [report("n1"), report("old", [], "2020-01-01T00:00:00.000Z")]);
    const v = await getView(d);
    assert.equal(v.Status, "Ready");
    assert.equal(v.AgentReady, true);
    assert.deepEqual(v.Nodes, ["n1"], "a report older than 30 s does not count");
    assert.deepEqual(v.Images, [{ OriginalImage: image.original, TargetImage: image.target, Size: 1234, Layers: 2 }]);
    assert.equal(v.NfsReady, false, "a temporary directory on the root disk is not a mounted shared filesystem");
    await rm(join(d, "nodes", "n1.json"));
    const none = await getView(d);
    assert.equal(none.Status, "Unknown");
    assert.deepEqual(none.Images, []);
    await rm(d, { recursive: true });
  });

  it("Creating while an operation holds the lock (Images empty), CreateError after a failure; a second operation is refused", async () => {
    const d = await sharedDir({ enabled: true, images: [image], lastError: { kind: "create", image: "x", message: "boom" } }, [report("n1")]);
    assert.equal((await getView(d)).Status, "CreateError");
    assert.equal((await getView(d)).Error, "boom");
    await withOperation(d, "create", "reg.example.com/team/other:v1", async () => {
      const v = await getView(d);
      assert.equal(v.Status, "Creating");
      assert.deepEqual(v.Images, []);
      await assert.rejects(
        withOperation(d, "delete", "y", async () => undefined),
        /a create of reg\.example\.com\/team\/other:v1 is running/,
      );
    });
    await rm(d, { recursive: true });
  });

  it("a lock left by a process that died on this host is cleared", async () => {
    const d = await sharedDir({ enabled: true, images: [] }, [report("n1")]);
    await writeFile(join(d, "accelerate.lock"), JSON.stringify({ kind: "delete", image: "z", host: hostname(), pid: 2 ** 22 + 12345, startedAt: "x" }));
    assert.equal((await getView(d)).Status, "Ready");
    await rm(d, { recursive: true });
  });

  it("delete names the nodes using the layers, keeps layers another image shares, and --force overrides", async () => {
    const other = { ...image, original: "reg.example.com/team/base:v1", target: "reg.example.com/team/base:v1-acc", chainIds: [chain("a")] };
    const users = [
      report("n1", [
        {
          chainId: chain("b"),
          snapshots: [
            { name: chain("b"), kind: "COMMITTED" },
            { name: "default/9/ctr", kind: "ACTIVE" },
          ],
        },
      ]),
    ];
    const d = await sharedDir({ enabled: true, images: [image, other] }, users);
    await assert.rejects(remove(d, image.original), /in use on n1 \(1 container rootfs snapshot\(s\)\)/);
    const v = await remove(d, image.original, true);
    assert.deepEqual(
      v.Images.map((i) => i.OriginalImage),
      [other.original],
    );
    assert.deepEqual(await readdir(join(d, "layers")), ["a".repeat(64)], "the shared base layer stays");
    await rm(d, { recursive: true });
  });
});
