/** The snapshot store through its interface: containerd's filter syntax, overlayfs mounts, shared layers, cleanup. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { matches, parseFilters } from "../../src/snapshotter/filters.js";
import { mountsFor } from "../../src/snapshotter/mounts.js";
import { SnapshotError, SnapshotStore } from "../../src/snapshotter/store.js";
import { ACCEL_LABELS } from "../../src/accelerate/layout.js";

const item = { name: "default/5/sha256:abc", parent: "sha256:p", kind: "COMMITTED", labels: { "containerd.io/snapshot.ref": "sha256:abc", a: "1" } };

describe("containerd filters", () => {
  it("matches the metadata store's remote-snapshot lookup (quoted label key, bare and quoted values)", () => {
    const f = parseFilters([`labels."containerd.io/snapshot.ref"==sha256:abc,parent=="sha256:p"`]);
    assert.equal(matches(item, f), true);
    assert.equal(matches({ ...item, parent: "other" }, f), false);
    assert.equal(matches({ ...item, labels: {} }, f), false);
  });
  it("ORs filter strings, ANDs selectors, supports !=, ~=, presence and kind", () => {
    assert.equal(matches(item, parseFilters(["name==nope", "kind==committed"])), true);
    assert.equal(matches(item, parseFilters(["kind==committed,labels.a!=1"])), false);
    assert.equal(matches(item, parseFilters(["name~=^default/[0-9]+/"])), true);
    assert.equal(matches(item, parseFilters(["labels.a"])), true);
    assert.equal(matches(item, parseFilters(["labels.b"])), false);
    assert.equal(matches(item, parseFilters([])), true);
    assert.throws(() => parseFilters(['name=="open']), /unterminated/);
  });
});

describe("overlayfs mounts", () => {
  const base = { upper: "/r/1/fs", work: "/r/1/work", indexOff: false };
  it("bind for no parent, read-only bind for a view of one, overlay otherwise", () => {
    assert.deepEqual(mountsFor({ ...base, kind: "ACTIVE", lowers: [] }), [{ type: "bind", source: "/r/1/fs", options: ["rw", "rbind"] }]);
    assert.deepEqual(mountsFor({ ...base, kind: "VIEW", lowers: ["/s/a"] }), [{ type: "bind", source: "/s/a", options: ["ro", "rbind"] }]);
    assert.deepEqual(mountsFor({ ...base, kind: "VIEW", lowers: ["/s/b", "/s/a"] }), [{ type: "overlay", source: "overlay", options: ["lowerdir=/s/b:/s/a"] }]);
    assert.deepEqual(mountsFor({ ...base, kind: "ACTIVE", lowers: ["/s/a"], indexOff: true }), [
      { type: "overlay", source: "overlay", options: ["index=off", "workdir=/r/1/work", "upperdir=/r/1/fs", "lowerdir=/s/a"] },
    ]);
  });
});

describe("snapshot store", () => {
  const log = pino({ level: "silent" });
  const open = async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-store-"));
    const shared = join(dir, "shared");
    const store = await SnapshotStore.open({ root: join(dir, "root"), shared, log });
    return { dir, shared, store };
  };

  it("answers AlreadyExists for a layer unpacked on shared storage and mounts it read-only from there", async () => {
    const { dir, shared, store } = await open();
    const chainId = `sha256:${"a".repeat(64)}`;
    await mkdir(join(shared, "layers", "a".repeat(64)), { recursive: true });
    const labels = { [ACCEL_LABELS.snapshotRef]: chainId, [ACCEL_LABELS.chainId]: chainId };
    await assert.rejects(
      store.prepare(`default/1/extract-1 ${chainId}`, "", labels),
      (e: unknown) => e instanceof SnapshotError && e.code === "ALREADY_EXISTS",
    );
    const rec = store.get(chainId);
    assert.equal(rec.kind, "COMMITTED");
    assert.deepEqual(
      store.list([`labels."containerd.io/snapshot.ref"==${chainId},parent==""`]).map((s) => s.name),
      [chainId],
    );
    assert.deepEqual(await store.view("v", chainId, {}), [{ type: "bind", source: join(shared, "layers", "a".repeat(64)), options: ["ro", "rbind"] }]);
    assert.deepEqual(await store.usage(chainId), { size: 0, inodes: 0 }, "a shared layer takes no space on the node");
    await store.remove("v");
    await store.remove(chainId);
    assert.ok((await readdir(join(shared, "layers"))).length === 1, "removing the snapshot leaves the shared layer alone");
    await rm(dir, { recursive: true, force: true });
  });

  it("prepares an ordinary snapshot when the shared layer is missing", async () => {
    const { dir, store } = await open();
    const chainId = `sha256:${"b".repeat(64)}`;
    const labels = { [ACCEL_LABELS.snapshotRef]: chainId, [ACCEL_LABELS.chainId]: chainId };
    const m = await store.prepare("k", "", labels);
    assert.equal(m[0]!.type, "bind");
    assert.equal(store.get("k").kind, "ACTIVE");
    await rm(dir, { recursive: true, force: true });
  });

  it("errors as containerd expects, and Cleanup removes directories no snapshot owns", async () => {
    const { dir, store } = await open();
    await store.prepare("a", "", {});
    await assert.rejects(store.prepare("a", "", {}), /already exists/);
    await assert.rejects(store.prepare("b", "missing", {}), /does not exist/);
    await assert.rejects(store.prepare("b", "a", {}), /not a committed/);
    await assert.rejects(store.mountsOf("nope"), /does not exist/);
    await store.commit("a-done", "a", {});
    await assert.rejects(store.commit("x", "a", {}), /does not exist/);
    await assert.rejects(store.mountsOf("a-done"), /committed/);
    await mkdir(join(dir, "root", "snapshots", "999", "fs"), { recursive: true });
    assert.equal(await store.cleanup(), 1);
    assert.deepEqual(await readdir(join(dir, "root", "snapshots")), ["1"]);
    await rm(dir, { recursive: true, force: true });
  });
});
