/**
 * A peer on a node whose snapshotter reports on the shared directory carries the
 * kiln.io/accelerate label to its scheduler (and so to the manager's inventory);
 * once the report goes stale, the label goes. Real peer and scheduler processes.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TestCluster } from "../helpers/cluster.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import { sharedLayout } from "../../src/accelerate/layout.js";

describe("the kiln.io/accelerate label of a peer", () => {
  let cluster: TestCluster | undefined;
  after(() => cluster?.stop());

  it("is there while the node's snapshotter report is fresh, and gone once it is stale", async () => {
    cluster = await TestCluster.start();
    const shared = join(cluster.dir, "shared");
    await mkdir(sharedLayout.nodes(shared), { recursive: true });
    const report = (updatedAt: Date) =>
      writeFile(sharedLayout.node(shared, "node-x"), JSON.stringify({ node: "node-x", updatedAt: updatedAt.toISOString(), layers: [] }));
    await report(new Date());
    await cluster.addPeer("node-x", { args: ["--accelerate-shared", shared, "--keepalive-ms", "300", "--label", "zone=a"] });
    const scheduler = new SchedulerClient(cluster.schedulerUrl);
    const labels = async () => (await scheduler.hosts()).hosts.find((h) => h.hostname === "node-x")?.labels;
    const until = async (want: Record<string, string>) => {
      for (const deadline = Date.now() + 15_000; ; ) {
        const got = await labels();
        if (JSON.stringify(got) === JSON.stringify(want)) return;
        assert.ok(Date.now() < deadline, `labels ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until({ zone: "a", "kiln.io/accelerate": "true" });
    await report(new Date(Date.now() - 60 * 60_000));
    await until({ zone: "a" });
  });
});
