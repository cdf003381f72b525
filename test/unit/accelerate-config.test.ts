import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { containerdSnapshotterToml } from "../../src/snapshotter/containerd-config.js";

describe("kiln config containerd --snapshotter", () => {
  it("registers the proxy snapshotter and, for Kubernetes, makes it CRI's with snapshot annotations on", () => {
    const { path, content } = containerdSnapshotterToml({ address: "/run/x.sock" });
    assert.equal(path, "/etc/containerd/config.toml");
    assert.match(content, /^ {2}\[proxy_plugins\.kiln\]$/m);
    assert.match(content, /type = "snapshot"\n\s+address = "\/run\/x\.sock"/);
    assert.match(content, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\]\n\s+snapshotter = "kiln"/);
    assert.match(content, /disable_snapshot_annotations = false/);
    const plain = containerdSnapshotterToml({ cri: false }).content;
    assert.doesNotMatch(plain, /cri/);
    assert.match(plain, /address = "\/run\/kiln\/snapshotter\.sock"/);
  });
});
