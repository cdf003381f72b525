import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskStatus } from "../../src/api/scheduler.js";
import { UrlTracker, jobProgress, rate } from "../../src/manager/jobs/preheat-progress.js";
import { hostLabel } from "../../src/common/host-label.js";
import { heldBytes } from "../../src/scheduler/status.js";
import { BitSet } from "../../src/common/bitset.js";

const MiB = 1024 * 1024;
const TASK = "a".repeat(64);

function status(peers: Partial<TaskStatus["peers"][number]>[], contentLength: number | null = 10 * MiB): TaskStatus {
  return {
    task: {
      id: TASK,
      state: "running",
      contentLength,
      pieceLength: contentLength === null ? null : 4 * MiB,
      totalPieces: contentLength === null ? null : 3,
      error: null,
    },
    peers: peers.map((p, i) => ({
      peerId: `p${i}`,
      hostId: "h1",
      hostname: "node",
      ip: "10.0.0.1",
      isSeed: true,
      state: "running",
      finishedPieces: 0,
      error: null,
      ...p,
    })),
  };
}

function tracker() {
  const lines: string[] = [];
  const t = new UrlTracker("http://o/f", 1, "c1", (l) => lines.push(l));
  t.asked({
    taskId: TASK,
    hosts: [
      { hostId: "h1", hostname: "node", ip: "10.0.0.1", accepted: true },
      { hostId: "h2", hostname: "node", ip: "10.0.0.2", accepted: true },
    ],
  });
  return { t, lines };
}

test("bytes, pieces and rate rise with the scheduler's reports; totals are content × hosts", () => {
  const { t, lines } = tracker();
  assert.equal(t.view.state, "running");
  assert.equal(t.view.bytes_total, null);
  t.status(status([{ state: "back_to_source", finishedPieces: 1, finishedBytes: 4 * MiB, port: 4000 }]), 1000);
  assert.equal(t.view.bytes_total, 20 * MiB);
  assert.equal(t.view.pieces_total, 6);
  assert.equal(t.view.bytes_done, 4 * MiB);
  assert.equal(t.view.hosts_fetching, 1);
  t.status(status([{ state: "back_to_source", finishedPieces: 2, finishedBytes: 8 * MiB, port: 4000 }]), 3000);
  assert.equal(t.view.pieces_done, 2);
  assert.equal(t.view.rate_bps, 2 * MiB, "4 MiB in 2 s");
  const h1 = t.view.hosts.find((h) => h.ip === "10.0.0.1");
  assert.deepEqual([h1?.state, h1?.from_origin, h1?.port, h1?.host_type], ["fetching", true, 4000, "super"]);
  assert.equal(t.view.hosts.find((h) => h.ip === "10.0.0.2")?.state, "queued");
  t.settle("h1", true, "preheated", 5000);
  assert.equal(t.view.hosts.find((h) => h.ip === "10.0.0.1")?.bytes_done, 10 * MiB);
  t.settle("h2", false, "origin answered 404");
  t.finish(true);
  assert.equal(t.view.state, "failed");
  assert.equal(t.view.rate_bps, 0);
  assert.equal(t.view.hosts.find((h) => h.ip === "10.0.0.2")?.error, "origin answered 404");
  assert.ok(
    lines.some((l) => /size 10\.0 MiB in 3 piece/.test(l)),
    lines.join("\n"),
  );
  assert.ok(
    lines.some((l) => l.includes("seed peer node (10.0.0.1:4000) started fetching from the origin")),
    lines.join("\n"),
  );
  assert.ok(
    lines.some((l) => l.includes("node (10.0.0.1:4000) done: 10.0 MiB in 4.0 s")),
    lines.join("\n"),
  );
});

test("a scheduler without finishedBytes: bytes estimated from pieces, capped at the content", () => {
  const { t } = tracker();
  t.status(status([{ finishedPieces: 3 }]), 0);
  assert.equal(t.view.hosts.find((h) => h.ip === "10.0.0.1")?.bytes_done, 10 * MiB);
});

test("job progress sums the URLs and stays null while a size is unknown", () => {
  const a = tracker().t;
  const b = tracker().t;
  a.status(status([{ finishedPieces: 1, finishedBytes: 4 * MiB }]), 0);
  const p = jobProgress({ total: 2, succeeded: 0, failed: 0 }, [a.view, b.view]);
  assert.equal(p.bytes_done, 4 * MiB);
  assert.equal(p.bytes_total, null);
  b.status(status([{ finishedPieces: 0 }], 1 * MiB), 0);
  assert.equal(jobProgress({ total: 2, succeeded: 0, failed: 0 }, [a.view, b.view]).bytes_total, 22 * MiB);
});

test("rate uses the last five seconds only", () => {
  const s = [
    { t: 0, bytes: 0 },
    { t: 1000, bytes: 100 * MiB },
    { t: 7000, bytes: 100 * MiB },
    { t: 8000, bytes: 101 * MiB },
  ];
  assert.equal(rate(s, 8000), Math.round(MiB / 7));
  assert.equal(rate([{ t: 0, bytes: 0 }], 0), 0);
});

test("heldBytes: the last piece is short", () => {
  const pieces = new BitSet();
  pieces.add(0);
  pieces.add(2);
  assert.equal(heldBytes({ contentLength: 10 * MiB, pieceLength: 4 * MiB, totalPieces: 3 }, { pieces }), 6 * MiB);
  assert.equal(heldBytes({ contentLength: null, pieceLength: null, totalPieces: null }, { pieces }), 0);
});

test("hostLabel shows the port beside the IP", () => {
  assert.equal(hostLabel({ hostname: "n", ip: "10.0.0.1", port: 4000 }), "n (10.0.0.1:4000)");
  assert.equal(hostLabel({ hostname: "n", ip: "::1", port: 4000 }), "n ([::1]:4000)");
  assert.equal(hostLabel({ hostname: "n", ip: "10.0.0.1" }), "n (10.0.0.1)");
});
