/**
 * Scheduler cluster scopes and limits, with real processes: a manager, one scheduler
 * in the default cluster and one in a scoped cluster. A peer started with only
 * `--manager` lands in the cluster its IDC or host name matches; the parent limit
 * set on a cluster is what that cluster's scheduler hands out; invalid scopes are
 * refused with the field named and nothing is created.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runKiln, spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { api, ROOT_PASSWORD } from "../helpers/manager.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import type { PieceInfo } from "../../src/api/scheduler.js";

const PIECE = 4 * 1024 * 1024;
const TOKEN = "t".repeat(32);
const HOSTS = ["h1", "h2", "h3", "h4"];
const DOWNLOAD = { url: `http://origin.invalid/limits-${process.pid}` };

/** Announces four hosts to a scheduler; the first three hold the whole (one-piece) task. */
async function threeHolders(client: SchedulerClient): Promise<void> {
  for (const [i, id] of HOSTS.entries()) {
    const host = { id, hostname: id, ip: `127.0.0.${i + 10}`, uploadPort: 1000 + i, isSeed: false, location: "", idc: "", uploadSlots: 4, freeUploadSlots: 4 };
    await client.announceHost({ ...host, controlToken: TOKEN });
  }
  const pieces: PieceInfo[] = [{ number: 0, digest: `sha256:${createHash("sha256").update("p0").digest("hex")}`, length: PIECE }];
  for (const id of HOSTS.slice(0, 3)) {
    await client.registerPeer({ peerId: `holder-${id}`, hostId: id, download: DOWNLOAD, completed: { contentLength: PIECE, pieceLength: PIECE, pieces } });
  }
}

describe("scheduler cluster scopes and limits", () => {
  let dir: string;
  let manager: KilnProcess;
  let managerUrl: string;
  let token: string;
  let zoneB: any;
  const procs: KilnProcess[] = [];

  const scheduler = async (extra: string[]) => {
    const p = await spawnKiln(["scheduler", "--host", "127.0.0.1", "--port", "0", "--manager", managerUrl, "--advertise-ip", "127.0.0.1", ...extra]);
    procs.push(p);
    return { proc: p, url: `http://127.0.0.1:${p.ready.port as number}` };
  };
  let schedulerA: { url: string };
  let schedulerB: { url: string };

  /** A peer that names no scheduler: the manager picks one by the clusters' scopes. */
  const peerByScopes = async (hostname: string, extra: string[]) => {
    const p = await spawnKiln([
      "peer",
      "--manager",
      managerUrl,
      "--host",
      "127.0.0.1",
      "--advertise-ip",
      "127.0.0.1",
      "--hostname",
      hostname,
      "--port",
      "0",
      "--proxy-port",
      "0",
      "--metrics-port",
      "0",
      "--data-dir",
      join(dir, hostname),
      ...extra,
    ]);
    procs.push(p);
    const chosen = p.lines.map((l) => JSON.parse(l)).find((l) => l.event === "scheduler-chosen");
    assert.ok(chosen, `peer ${hostname} logged no scheduler choice:\n${p.lines.join("\n")}`);
    return chosen as { cluster: string; scheduler: string };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-scopes-"));
    manager = await spawnKiln(
      ["manager", "--host", "127.0.0.1", "--port", "0", "--database-url", `sqlite:${join(dir, "manager.db")}`, "--keepalive-ms", "300"],
      { env: { KILN_ROOT_PASSWORD: ROOT_PASSWORD } },
    );
    procs.push(manager);
    managerUrl = `http://127.0.0.1:${manager.ready.port as number}`;
    const created = await runKiln(["token", "create", "--scope", "cluster", "--manager", managerUrl], { env: { KILN_MANAGER_PASSWORD: ROOT_PASSWORD } });
    assert.equal(created.code, 0, created.stderr);
    token = created.stdout.trim();
    const r = await api(`${managerUrl}/oapi/v1/clusters`, {
      token,
      body: { name: "zone-b", scopes: { idc: "zone-b|zone-c", cidrs: ["10.20.0.0/16"], hostnames: ["^gpu-[0-9]+$"] } },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    zoneB = r.json;
    schedulerA = await scheduler([]);
    schedulerB = await scheduler(["--cluster-id", String(zoneB.id)]);
    // Both schedulers active before peers ask.
    for (;;) {
      const list = (await api(`${managerUrl}/oapi/v1/clusters`, { token })).json as any[];
      if (list.every((c) => c.schedulers.some((s: any) => s.state === "active"))) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  after(async () => {
    for (const p of procs.reverse()) await p.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("stores and shows the scopes and the limits with their defaults", async () => {
    assert.deepEqual(zoneB.scopes, { idc: "zone-b|zone-c", location: "", cidrs: ["10.20.0.0/16"], hostnames: ["^gpu-[0-9]+$"] });
    assert.equal(zoneB.config.candidate_parent_limit, 4);
    assert.equal(zoneB.config.filter_parent_limit, 40);
    const console = (await api(`${managerUrl}/oapi/v1/clusters/${zoneB.id}`, { token })).json;
    assert.deepEqual(console.scopes, zoneB.scopes);
  });

  it("refuses invalid scopes and limits with 422 naming the field, and creates nothing", async () => {
    const before = ((await api(`${managerUrl}/oapi/v1/clusters`, { token })).json as any[]).length;
    const cases: [unknown, RegExp][] = [
      [{ cidrs: ["10.0.0.0/33"] }, /scopes\.cidrs\.0.*CIDR/],
      [{ cidrs: ["not-an-ip/8"] }, /scopes\.cidrs\.0.*CIDR/],
      [{ hostnames: ["(unclosed"] }, /scopes\.hostnames\.0.*regular expression/],
    ];
    for (const [scopes, message] of cases) {
      const r = await api(`${managerUrl}/oapi/v1/clusters`, { token, body: { name: "bad", scopes } });
      assert.equal(r.status, 422, JSON.stringify(r.json));
      assert.match(r.json.message, message);
    }
    const limit = await api(`${managerUrl}/oapi/v1/clusters`, { token, body: { name: "bad", config: { candidate_parent_limit: 0 } } });
    assert.equal(limit.status, 422);
    assert.match(limit.json.message, /config\.candidate_parent_limit/);
    assert.equal(((await api(`${managerUrl}/oapi/v1/clusters`, { token })).json as any[]).length, before);
  });

  it("puts a peer in the cluster its IDC or host name matches, and others in the default cluster", async () => {
    const byIdc = await peerByScopes("node-1", ["--idc", "zone-c"]);
    assert.equal(byIdc.cluster, "zone-b");
    assert.equal(byIdc.scheduler, schedulerB.url);
    const byName = await peerByScopes("gpu-7", []);
    assert.equal(byName.cluster, "zone-b");
    const other = await peerByScopes("node-2", ["--idc", "zone-x"]);
    assert.equal(other.cluster, "cluster-1");
    assert.equal(other.scheduler, schedulerA.url);
  });

  it("makes the cluster's scheduler hand out as many parents as its candidate_parent_limit", async () => {
    const client = new SchedulerClient(schedulerB.url);
    await threeHolders(client);
    const first = await client.registerPeer({ peerId: "asker", hostId: "h4", download: DOWNLOAD });
    assert.equal(first.parents.length, 3, "with the default limit of 4, every holder is offered");

    const patched = await api(`${managerUrl}/oapi/v1/clusters/${zoneB.id}`, { token, method: "PATCH", body: { config: { candidate_parent_limit: 1 } } });
    assert.equal(patched.status, 200, JSON.stringify(patched.json));
    assert.equal(patched.json.config.candidate_parent_limit, 1);
    assert.deepEqual(patched.json.scopes, zoneB.scopes, "a PATCH without scopes keeps them");
    // The scheduler takes the new limit with its next keepalive (every 300 ms here).
    const deadline = Date.now() + 15_000;
    let parents = first.parents.length;
    while (parents !== 1 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200));
      parents = (await client.schedule(first.taskId, "asker", { since: -1, waitMs: 0 })).parents.length;
    }
    assert.equal(parents, 1, "the scheduler kept handing out more parents than the cluster allows");
    // The default cluster's scheduler is not affected.
    const a = new SchedulerClient(schedulerA.url);
    await threeHolders(a);
    assert.equal((await a.registerPeer({ peerId: "asker", hostId: "h4", download: DOWNLOAD })).parents.length, 3);
  });
});
