/** Seed-peer triggering on its own: which seed is picked, and one control client per host, dropped with the host. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../../src/common/logger.js";
import { DownloadSpec } from "../../src/api/common.js";
import type { HostAnnounce } from "../../src/api/scheduler.js";
import type { PrefetchRequestInput } from "../../src/api/peer.js";
import { Resource } from "../../src/scheduler/resource/resource.js";
import type { ControlClientFactory } from "../../src/scheduler/resource/peer-control.js";
import { hostInfo as baseHostInfo } from "../helpers/host.js";

const log = createLogger("scheduler-test", "silent");

const hostInfo = (id: string, o: Partial<HostAnnounce> = {}) =>
  baseHostInfo(id, { ip: "10.0.0.1", uploadPort: 4000, isSeed: true, controlToken: `token-of-${id}`.padEnd(32, "x"), ...o });

/** Control clients that record their prefetch calls; `refuse` lists base URLs that answer with an error. */
function fakeClients(refuse: string[] = []) {
  const created: string[] = [];
  const calls: { baseUrl: string; taskId: string; token: string }[] = [];
  const factory: ControlClientFactory = (baseUrl) => {
    created.push(baseUrl);
    return {
      baseUrl,
      async prefetch(req: PrefetchRequestInput, token: string) {
        if (refuse.includes(baseUrl)) throw new Error(`${baseUrl} unreachable`);
        calls.push({ baseUrl, taskId: req.taskId, token });
        return { accepted: true, taskId: req.taskId };
      },
      async deleteTask() {
        return { deleted: true, bytes: 0 };
      },
      async importImage() {
        return { imported: false, detail: "no runtime" };
      },
    };
  };
  return { factory, created, calls };
}

const spec = (u: string) => DownloadSpec.parse({ url: `http://origin.example/${u}` });

describe("picking a seed host", () => {
  it("the seed with the most free upload slots, the same IDC first; never a seed already on the task, never a plain peer", () => {
    const r = new Resource(log);
    r.announceHost(hostInfo("busy", { freeUploadSlots: 1 }));
    r.announceHost(hostInfo("free", { freeUploadSlots: 9 }));
    r.announceHost(hostInfo("near", { freeUploadSlots: 5, idc: "dc-1" }));
    r.announceHost(hostInfo("plain", { isSeed: false, freeUploadSlots: 10, idc: "dc-1" }));
    r.announceHost(hostInfo("child", { isSeed: false, idc: "dc-1" }));
    const task = r.tasks.forDownload(spec("a"));
    const child = r.hosts.get("child")!;
    assert.equal(r.peerControl.pick(task, child)?.id, "near", "same IDC outweighs a few free slots");
    task.join("on-near", r.hosts.get("near")!);
    assert.equal(r.peerControl.pick(task, child)?.id, "free");
    task.join("on-free", r.hosts.get("free")!);
    task.join("on-busy", r.hosts.get("busy")!);
    assert.equal(r.peerControl.pick(task, child), undefined, "every seed is on the task already");
  });
});

describe("triggering", () => {
  it("reaches the host's upload port with its control token, through one client per host", async () => {
    const fake = fakeClients();
    const r = new Resource(log, fake.factory);
    r.announceHost(hostInfo("s1", { ip: "10.0.0.1" }));
    r.announceHost(hostInfo("s2", { ip: "10.0.0.2" }));
    const [s1, s2] = [r.hosts.get("s1")!, r.hosts.get("s2")!];
    for (const u of ["a", "b", "c"]) {
      assert.equal(await r.peerControl.trigger(s1, r.tasks.forDownload(spec(u))), undefined);
      assert.equal(await r.peerControl.trigger(s2, r.tasks.forDownload(spec(u))), undefined);
    }
    assert.deepEqual(fake.created, ["http://10.0.0.1:4000", "http://10.0.0.2:4000"], "one client per host, reused");
    assert.equal(fake.calls.length, 6);
    assert.deepEqual(new Set(fake.calls.filter((c) => c.baseUrl.includes("10.0.0.1")).map((c) => c.token)), new Set([s1.info.controlToken]));
  });

  it("a host that moves gets a new client; a dropped host's client goes with it", async () => {
    const fake = fakeClients();
    const r = new Resource(log, fake.factory);
    r.announceHost(hostInfo("s", { ip: "10.0.0.1" }));
    const task = r.tasks.forDownload(spec("d"));
    await r.peerControl.trigger(r.hosts.get("s")!, task);
    r.announceHost(hostInfo("s", { ip: "10.0.0.9", uploadPort: 4010 }));
    await r.peerControl.trigger(r.hosts.get("s")!, task);
    assert.deepEqual(fake.created, ["http://10.0.0.1:4000", "http://10.0.0.9:4010"]);
    r.dropHost(r.hosts.get("s")!, "test");
    r.announceHost(hostInfo("s", { ip: "10.0.0.9", uploadPort: 4010 }));
    await r.peerControl.trigger(r.hosts.get("s")!, task);
    assert.equal(fake.created.length, 3, "the host that came back got a fresh client");
  });

  it("a trigger that fails resolves to the reason, it does not throw", async () => {
    const fake = fakeClients(["http://10.0.0.1:4000"]);
    const r = new Resource(log, fake.factory);
    r.announceHost(hostInfo("s"));
    assert.match((await r.peerControl.trigger(r.hosts.get("s")!, r.tasks.forDownload(spec("e"))))!, /unreachable/);
  });
});
