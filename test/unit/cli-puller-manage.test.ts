import assert from "node:assert/strict";
import { test } from "node:test";
import type { PullScheduleView } from "../../src/api/puller.js";
import { scheduleDetail, scheduleRows } from "../../src/cli/puller-manage.js";

const base: PullScheduleView = {
  id: 3,
  created_at: "2026-12-07T10:00:00Z",
  updated_at: "2026-12-07T10:00:00Z",
  name: "warm",
  bio: "",
  images: [
    { name: "app", image: "reg:5000/app:1" },
    { name: "db", image: "reg:5000/db:2" },
  ],
  interval_hours: 1,
  cron: null,
  node_selector: { zone: "a" },
  has_credentials: false,
  insecure_registries: [],
  concurrency: 1,
  scheduler_cluster_ids: [1],
  enabled: true,
  state: "idle",
  last_run_at: "2026-12-07T10:01:00Z",
  next_run_at: "2026-12-07T11:01:00Z",
  status: {
    images: [
      { name: "app", image: "reg:5000/app:1", digest: `sha256:${"a".repeat(64)}`, error: null, checked_at: "" },
      { name: "db", image: "reg:5000/db:2", digest: null, error: "the registry answered plain HTTP; pass --insecure-registry reg:5000", checked_at: "" },
    ],
    nodes: [
      { host_id: "h1", hostname: "node", ip: "10.0.0.1", selected: true, scheduler_cluster_id: 1 },
      { host_id: "h2", hostname: "node", ip: "10.0.0.2", selected: true, scheduler_cluster_id: 1 },
    ],
    cells: [
      { image: "app", host_id: "h1", state: "warm", reason: null, checked_at: "" },
      { image: "app", host_id: "h2", state: "failed", reason: "disk full", checked_at: "" },
    ],
  },
};

test("get: the image × node matrix, hosts that share a name told apart by IP, then each failure's reason", () => {
  const out = scheduleDetail(base);
  const lines = out.split("\n");
  assert.match(lines[0]!, /^pull schedule 3 "warm": 2 image\(s\), every 1 h, idle/);
  assert.match(lines[1]!, /^IMAGE\s+DIGEST\s+node \(10\.0\.0\.1\)\s+node \(10\.0\.0\.2\)$/);
  assert.match(lines[2]!, /^reg:5000\/app:1\s+sha256:aaaaaaaaaaaa\s+warm\s+FAILED$/);
  assert.match(lines[3]!, /^reg:5000\/db:2\s+unresolved\s+-\s+-$/);
  assert.match(
    out,
    /failures:\n {2}reg:5000\/db:2: the registry answered plain HTTP; pass --insecure-registry reg:5000\n {2}reg:5000\/app:1 on node \(10\.0\.0\.2\): disk full\n$/,
  );
});

test("get before any run says how to start one; list is one row per schedule", () => {
  assert.match(scheduleDetail({ ...base, status: null }), /no run yet: kiln puller run 3\n$/);
  const rows = scheduleRows([base, { ...base, id: 4, name: "nightly", cron: "0 3 * * *", interval_hours: null, enabled: false, node_selector: {} }]).split(
    "\n",
  );
  assert.match(rows[0]!, /^ID\s+NAME\s+IMAGES\s+WHEN\s+NODES\s+STATE\s+LAST RUN\s+NEXT RUN$/);
  assert.match(rows[1]!, /^3\s+warm\s+2\s+every 1 h\s+zone=a\s+idle\s/);
  assert.match(rows[2]!, /^4\s+nightly\s+2\s+cron 0 3 \* \* \*\s+every peer\s+disabled\s/);
});
