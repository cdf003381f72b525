/** Preheat on its own: which hosts a scope targets, and the queue that honours concurrent_peer_count. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../../src/common/logger.js";
import { KilnError } from "../../src/common/errors.js";
import { DownloadSpec } from "../../src/api/common.js";
import { PreheatRequest, type HostAnnounce, type PreheatRequestInput } from "../../src/api/scheduler.js";
import { Resource } from "../../src/scheduler/resource/resource.js";
import type { ControlClientFactory } from "../../src/scheduler/resource/peer-control.js";
import { Preheat } from "../../src/scheduler/preheat.js";
import { hostInfo as baseHostInfo } from "../helpers/host.js";

const log = createLogger("scheduler-test", "silent");

const hostInfo = (id: string, o: Partial<HostAnnounce> = {}) => baseHostInfo(id, { ip: `10.0.0.${id.length}`, uploadPort: 4000, ...o });

/** Hosts are told apart by upload port; `refused` ports answer every prefetch with an error. */
function setup(hosts: [string, Partial<HostAnnounce>?][], refused: number[] = []) {
  const asked: string[] = [];
  const byPort = new Map<number, string>();
  const factory: ControlClientFactory = (baseUrl) => ({
    baseUrl,
    async prefetch(req) {
      const id = byPort.get(Number(new URL(baseUrl).port))!;
      asked.push(id);
      if (refused.includes(Number(new URL(baseUrl).port))) throw new Error(`${id} refused`);
      return { accepted: true, taskId: req.taskId };
    },
    async deleteTask() {
      return { deleted: true, bytes: 0 };
    },
    async importImage() {
      return { imported: false, detail: "no runtime" };
    },
  });
  const r = new Resource(log, factory);
  hosts.forEach(([id, o], i) => {
    byPort.set(5000 + i, id);
    r.announceHost(hostInfo(id, { uploadPort: 5000 + i, ...o }));
  });
  const preheat = new Preheat(r, log);
  const run = (req: Omit<PreheatRequestInput, "download">) => preheat.preheat(PreheatRequest.parse({ download: { url: "http://origin.example/p" }, ...req }));
  const task = () => r.tasks.forDownload(DownloadSpec.parse({ url: "http://origin.example/p" }));
  return { r, preheat, asked, run, task };
}

const settle = () => new Promise((r) => setImmediate(r));

describe("preheat targets", () => {
  const hosts: [string, Partial<HostAnnounce>?][] = [
    ["seed-a", { isSeed: true, freeUploadSlots: 2, ip: "10.1.0.1" }],
    ["seed-b", { isSeed: true, freeUploadSlots: 9, ip: "10.1.0.2" }],
    ["peer-c", { ip: "10.1.0.3" }],
    ["peer-d", { ip: "10.1.0.4" }],
  ];
  const targets = async (req: Omit<PreheatRequestInput, "download">) => (await setup(hosts).run(req)).hosts.map((h) => h.hostId);

  it("single_seed_peer: the seed with the most free upload slots", async () => {
    assert.deepEqual(await targets({}), ["seed-b"]);
  });

  it("all_seed_peers: seeds only; all_peers: every host; ips, count and percentage narrow them", async () => {
    assert.deepEqual(await targets({ scope: "all_seed_peers" }), ["seed-a", "seed-b"]);
    assert.deepEqual(await targets({ scope: "all_peers" }), ["seed-a", "seed-b", "peer-c", "peer-d"]);
    assert.deepEqual(await targets({ scope: "all_peers", ips: ["10.1.0.3", "10.1.0.1"] }), ["seed-a", "peer-c"]);
    assert.deepEqual(await targets({ scope: "all_peers", count: 3 }), ["seed-a", "seed-b", "peer-c"]);
    assert.deepEqual(await targets({ scope: "all_peers", percentage: 50 }), ["seed-a", "seed-b"]);
    assert.deepEqual(await targets({ scope: "all_seed_peers", percentage: 1 }), ["seed-a"], "at least one host");
  });

  it("no live host in scope is UNAVAILABLE", async () => {
    const { run } = setup([["peer-only"]]);
    await assert.rejects(run({ scope: "all_seed_peers" }), (e: unknown) => e instanceof KilnError && e.code === "UNAVAILABLE" && /seed peers/.test(e.message));
  });
});

describe("concurrent_peer_count", () => {
  it("only that many hosts fetch at once; the next is asked as one finishes, fails, or its host goes", async () => {
    const { r, preheat, asked, run, task } = setup([["a"], ["b"], ["c"], ["d"]]);
    const reply = await run({ scope: "all_peers", concurrentPeerCount: 1 });
    assert.deepEqual(
      reply.hosts.map((h) => [h.hostId, h.accepted]),
      ["a", "b", "c", "d"].map((id) => [id, true]),
    );
    await settle();
    assert.deepEqual(asked, ["a"]);

    const t = task();
    const pa = t.join("pa", r.hosts.get("a")!);
    pa.to("running");
    preheat.advance(t);
    await settle();
    assert.deepEqual(asked, ["a"], "still fetching");
    pa.to("succeeded");
    preheat.advance(t);
    await settle();
    assert.deepEqual(asked, ["a", "b"]);

    const pb = t.join("pb", r.hosts.get("b")!);
    pb.to("failed");
    preheat.advance(t);
    await settle();
    assert.deepEqual(asked, ["a", "b", "c"]);

    r.dropHost(r.hosts.get("c")!, "test");
    preheat.advanceAll();
    await settle();
    assert.deepEqual(asked, ["a", "b", "c", "d"]);
  });

  it("a queued host that cannot be asked makes room for the next at once", async () => {
    const { r, preheat, asked, run, task } = setup([["a"], ["b"], ["c"]], [5001]);
    await run({ scope: "all_peers", concurrentPeerCount: 1 });
    const t = task();
    const pa = t.join("pa", r.hosts.get("a")!);
    pa.to("running");
    pa.to("succeeded");
    preheat.advance(t);
    for (let i = 0; i < 5 && asked.length < 3; i++) await settle();
    assert.deepEqual(asked, ["a", "b", "c"], "b refused, so c was asked");
  });

  it("a first-round host that refuses is reported as not accepted", async () => {
    const { asked, run } = setup([["a"], ["b"]], [5000]);
    const reply = await run({ scope: "all_peers" });
    assert.deepEqual(
      reply.hosts.map((h) => [h.hostId, h.accepted]),
      [
        ["a", false],
        ["b", true],
      ],
    );
    assert.match(reply.hosts[0]!.error!, /refused/);
    assert.deepEqual(asked.sort(), ["a", "b"]);
  });

  it("a forgotten task's queue asks nobody else", async () => {
    const { r, preheat, asked, run, task } = setup([["a"], ["b"]]);
    await run({ scope: "all_peers", concurrentPeerCount: 1 });
    const t = task();
    preheat.forget(t);
    const pa = t.join("pa", r.hosts.get("a")!);
    pa.to("running");
    pa.to("succeeded");
    preheat.advance(t);
    preheat.advanceAll();
    await settle();
    assert.deepEqual(asked, ["a"]);
  });
});
