/**
 * The scheduler's resources on their own: hosts, a task's layout and digests,
 * its peers and the indexes kept for scheduling, and the long-poll signal.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { KilnError } from "../../src/common/errors.js";
import { createLogger } from "../../src/common/logger.js";
import { DownloadSpec } from "../../src/api/common.js";
import type { HostAnnounce, PieceInfo } from "../../src/api/scheduler.js";
import { HostManager } from "../../src/scheduler/resource/hosts.js";
import { Task } from "../../src/scheduler/resource/task.js";
import { TaskManager } from "../../src/scheduler/resource/tasks.js";
import { ChangeSignal } from "../../src/scheduler/resource/change-signal.js";
import { PieceDigests } from "../../src/scheduler/resource/piece-digests.js";
import { Resource } from "../../src/scheduler/resource/resource.js";
import type { Peer } from "../../src/scheduler/resource/peer.js";
import { hostInfo } from "../helpers/host.js";

const MiB = 1024 * 1024;
const log = createLogger("scheduler-test", "silent");

function piece(n: number, length = 4 * MiB): PieceInfo {
  return { number: n, digest: `sha256:${createHash("sha256").update(`piece-${n}`).digest("hex")}`, length };
}

const isKiln = (code: KilnError["code"], message?: RegExp) => (e: unknown) =>
  e instanceof KilnError && e.code === code && (!message || message.test(e.message));

let n = 0;
const newTask = () => new Task(`${++n}`.padStart(64, "0"), DownloadSpec.parse({ url: `http://origin.example/${n}` }));

/** A task with one peer per host `h0..h{count-1}`. */
function swarm(count: number, o: Partial<HostAnnounce> = {}) {
  const hosts = new HostManager();
  const task = newTask();
  const peers = Array.from({ length: count }, (_, i) => task.join(`p${i}`, hosts.announce(hostInfo(`h${i}`, o)).host));
  return { hosts, task, peers };
}

const pools = (task: Task, p: Peer) => (["spreaders", "holders", "empties"] as const).filter((k) => task.peers[k].has(p));

describe("hosts", () => {
  it("an announce creates a host once; later ones refresh it; the seed index follows isSeed", () => {
    const hosts = new HostManager();
    assert.equal(hosts.announce(hostInfo("a"), 1).created, true);
    const again = hosts.announce(hostInfo("a", { freeUploadSlots: 3, isSeed: true }), 2);
    assert.equal(again.created, false);
    assert.equal(again.host.lastSeen, 2);
    assert.equal(again.host.freeSlotShare, 0.3);
    assert.deepEqual(
      [...hosts.seedHosts()].map((h) => h.id),
      ["a"],
    );
    hosts.announce(hostInfo("a", { isSeed: false }), 3);
    assert.deepEqual([...hosts.seedHosts()], []);
  });

  it("live() refuses unknown and removed hosts; expired() lists those past their keepalive", () => {
    const hosts = new HostManager();
    assert.throws(() => hosts.live("nobody"), isKiln("NOT_FOUND", /announce it first/));
    const { host } = hosts.announce(hostInfo("a"), 1_000);
    hosts.announce(hostInfo("b"), 5_000);
    assert.deepEqual(
      hosts.expired(5_000, 3_000).map((h) => h.id),
      ["a"],
    );
    hosts.remove(host);
    assert.equal(host.alive, false);
    assert.throws(() => hosts.live("a"), isKiln("NOT_FOUND"));
    assert.equal(hosts.announce(hostInfo("a")).created, true, "a removed host that announces again is new");
  });

  it("a host that becomes a seed moves its peers into the spreaders", () => {
    const { hosts, task, peers } = swarm(1);
    peers[0]!.to("running");
    assert.deepEqual(pools(task, peers[0]!), ["empties"]);
    hosts.announce(hostInfo("h0", { isSeed: true }));
    assert.deepEqual(pools(task, peers[0]!), ["spreaders"]);
    assert.equal(task.peers.children.has(peers[0]!), false, "a seed is not spread to");
  });
});

describe("a task's layout", () => {
  it("one check for every claim: a differing content or piece length is a CONFLICT, absent fields claim nothing", () => {
    const task = newTask();
    task.setLayout({ contentLength: 10 * MiB, pieceLength: 4 * MiB });
    assert.equal(task.totalPieces, 3);
    assert.throws(() => task.checkLayout({ pieceLength: 8 * MiB }), isKiln("CONFLICT", /piece length .* differs/));
    assert.throws(() => task.checkLayout({ contentLength: 10 * MiB + 1 }), isKiln("CONFLICT", /content length .* differs/));
    assert.throws(() => task.setLayout({ contentLength: 1, pieceLength: 4 * MiB }), isKiln("CONFLICT"));
    assert.equal(task.contentLength, 10 * MiB, "a refused claim changes nothing");
    task.checkLayout({});
    task.checkLayout({ contentLength: null });
    task.checkLayout({ contentLength: 10 * MiB, pieceLength: 4 * MiB });
  });

  it("totalPieces is unknown without a layout and 0 for empty content", () => {
    const task = newTask();
    assert.equal(task.totalPieces, null);
    task.setLayout({ pieceLength: 4 * MiB });
    assert.equal(task.totalPieces, null);
    task.setLayout({ contentLength: 0 });
    assert.equal(task.totalPieces, 0);
    task.forgetLayout();
    assert.equal(task.totalPieces, null);
  });
});

describe("piece digests", () => {
  it("since(v) returns the digests stamped after v, in the order they became known", () => {
    const d = new PieceDigests();
    d.add(piece(3), 1);
    d.add(piece(0), 1);
    d.add(piece(1), 4);
    d.add(piece(3, 1), 9);
    assert.deepEqual(
      d.since(-1).map((p) => p.number),
      [3, 0, 1],
    );
    assert.deepEqual(
      d.since(1).map((p) => p.number),
      [1],
    );
    assert.deepEqual(d.since(4), []);
    assert.equal(d.get(3)!.length, 4 * MiB, "the first digest of a piece stays");
    d.clear();
    assert.deepEqual(d.all(), []);
  });

  it("a task stamps each new digest with a version a peer that saw an earlier one has not seen", () => {
    const task = newTask();
    const seen = task.version;
    task.addDigest(piece(0), true);
    task.touch();
    const v1 = task.version;
    task.addDigest(piece(1), false);
    task.addDigest(piece(0), false);
    task.touch();
    assert.deepEqual(
      task.digests.since(seen).map((p) => p.number),
      [0, 1],
    );
    assert.deepEqual(
      task.digests.since(v1).map((p) => p.number),
      [1],
    );
    assert.deepEqual(task.digests.since(task.version), []);
    assert.equal(typeof task.digests.reportedByOriginFetcherAt(0), "number");
    assert.equal(task.digests.reportedByOriginFetcherAt(1), undefined);
  });
});

describe("a task's peers and indexes", () => {
  it("join refuses a peer ID twice; leave forgets the peer on the task and on its host", () => {
    const { task, peers } = swarm(2);
    assert.throws(() => task.join("p0", peers[1]!.host), isKiln("CONFLICT"));
    assert.ok(task.hasPeerOn(peers[0]!.host));
    task.leave(peers[0]!);
    assert.equal(peers[0]!.state, "left");
    assert.equal(task.peers.has("p0"), false);
    assert.equal(task.hasPeerOn(peers[0]!.host), false);
    assert.equal(peers[0]!.host.peers.size, 0);
  });

  it("a peer moves between parent pools as it starts, gets pieces, fetches from the origin, is distrusted", () => {
    const { task, peers } = swarm(2);
    const [a, b] = peers as [Peer, Peer];
    assert.deepEqual(pools(task, a), [], "a pending peer serves nobody");
    assert.ok(task.peers.children.has(a));
    a.to("running");
    assert.deepEqual(pools(task, a), ["empties"]);
    task.setLayout({ contentLength: 8 * MiB, pieceLength: 4 * MiB });
    task.addDigest(piece(0), false);
    a.addPiece(0);
    assert.deepEqual(pools(task, a), ["holders"]);
    b.to("back_to_source");
    assert.deepEqual(pools(task, b), ["spreaders"]);
    assert.equal(task.source, b);
    assert.equal(task.peers.children.has(b), false, "the origin fetcher is not spread to");
    a.distrust();
    assert.deepEqual(pools(task, a), []);
    task.leave(b);
    assert.equal(task.source, undefined);
    assert.deepEqual(pools(task, b), []);
  });

  it("fully available means every piece held by a trusted peer, whatever its state", () => {
    const { task, peers } = swarm(3);
    const [a, b, c] = peers as [Peer, Peer, Peer];
    task.setLayout({ contentLength: 12 * MiB, pieceLength: 4 * MiB });
    assert.equal(task.fullyAvailable(), false);
    a.addPiece(0);
    b.addPiece(1);
    b.addPiece(2);
    assert.equal(task.fullyAvailable(), true);
    b.distrust();
    assert.equal(task.fullyAvailable(), false, "an untrusted peer's pieces do not count");
    c.addPiece(1);
    c.addPiece(2);
    c.to("failed");
    assert.equal(task.fullyAvailable(), true);
    task.leave(c);
    assert.equal(task.fullyAvailable(), false, "nor do those of a peer that left");
  });

  it("pieces reported before the layout was known do not make a smaller task look complete", () => {
    const { task, peers } = swarm(1);
    for (const n of [1, 5, 6]) peers[0]!.addPiece(n);
    task.setLayout({ contentLength: 12 * MiB, pieceLength: 4 * MiB });
    assert.equal(task.fullyAvailable(), false, "piece 0 and 2 are held by nobody");
  });

  it("a finished task whose copies leave is pending again", () => {
    const { task, peers } = swarm(1);
    task.setLayout({ contentLength: 4 * MiB, pieceLength: 4 * MiB });
    peers[0]!.addPiece(0);
    task.succeeded();
    assert.equal(task.state, "succeeded");
    task.leave(peers[0]!);
    assert.equal(task.state, "pending");
  });

  it("children hold dense positions as peers come and go", () => {
    const { task, peers } = swarm(5);
    peers[1]!.to("running");
    peers[2]!.to("running");
    peers[2]!.to("succeeded");
    task.leave(peers[3]!);
    const children = task.peers.children;
    assert.equal(children.size, 3);
    assert.deepEqual([peers[0]!, peers[1]!, peers[4]!].map((p) => children.indexOf(p)!).sort(), [0, 1, 2]);
  });
});

describe("tasks and dropping hosts", () => {
  it("a download names its task; unknown tasks and peers are NOT_FOUND; idle tasks are forgotten", () => {
    const tasks = new TaskManager();
    const spec = DownloadSpec.parse({ url: "http://origin.example/x" });
    const task = tasks.forDownload(spec);
    assert.equal(tasks.forDownload(DownloadSpec.parse({ url: "http://origin.example/x" })), task);
    assert.throws(() => tasks.task("f".repeat(64)), isKiln("NOT_FOUND"));
    assert.throws(() => tasks.peer(task.id, "ghost"), isKiln("NOT_FOUND"));
    assert.deepEqual(tasks.forgetIdle(task.lastActivity + 10, 10), []);
    assert.deepEqual(tasks.forgetIdle(task.lastActivity + 11, 10), [task]);
    assert.equal(tasks.get(task.id), undefined);
  });

  it("a dropped host takes its peers out of every task and releases a task waiting for it as a seed", () => {
    const r = new Resource(log);
    r.announceHost(hostInfo("seed", { isSeed: true }));
    r.announceHost(hostInfo("other"));
    const seed = r.hosts.get("seed")!;
    const t1 = r.tasks.forDownload(DownloadSpec.parse({ url: "http://origin.example/1" }));
    const t2 = r.tasks.forDownload(DownloadSpec.parse({ url: "http://origin.example/2" }));
    t1.join("s1", seed);
    t2.join("s2", seed);
    const kept = t2.join("o2", r.hosts.get("other")!);
    t1.seedTrigger = { hostId: "seed", until: Date.now() + 60_000 };
    const v = t1.version;
    r.dropHost(seed, "test");
    assert.equal(r.hosts.has("seed"), false);
    assert.deepEqual([...t1.peers.values()], []);
    assert.deepEqual([...t2.peers.values()], [kept]);
    assert.equal(t1.seedTrigger, null);
    assert.ok(t1.version > v, "long polls on the task wake up");
  });

  it("a host that announces itself from a new process loses the peers of the old one (its origin fetch included) and re-registers", () => {
    const r = new Resource(log);
    assert.equal(r.announceHost(hostInfo("seed", { isSeed: true, instance: "first" })), true);
    const task = r.tasks.forDownload(DownloadSpec.parse({ url: "http://origin.example/restart" }));
    const fetching = task.join("s1", r.hosts.get("seed")!);
    fetching.to("back_to_source");
    assert.equal(task.source, fetching);
    // The same process again: nothing changes.
    assert.equal(r.announceHost(hostInfo("seed", { isSeed: true, instance: "first" })), false);
    assert.equal(task.source, fetching);
    const v = task.version;
    // A new process under the same host ID, within the host timeout.
    assert.equal(r.announceHost(hostInfo("seed", { isSeed: true, instance: "second" })), true, "created: it re-registers what it holds");
    assert.equal(task.source, undefined, "the origin-fetcher role is free for another peer at once");
    assert.deepEqual([...task.peers.values()], []);
    assert.equal(fetching.state, "left");
    assert.ok(task.version > v, "peers waiting on the task are woken");
    assert.equal(r.hosts.get("seed")?.alive, true);
    // Peers that do not send an instance (older ones) are never taken for restarted.
    assert.equal(r.announceHost(hostInfo("seed", { isSeed: true })), false);
  });
});

describe("the change signal", () => {
  it("a wait ends at once when the version is already past, on notify, or at its timeout", async () => {
    const s = new ChangeSignal();
    await s.waitPast(-1, 60_000);
    let woke = false;
    const waiting = s.waitPast(s.version, 60_000).then(() => (woke = true));
    s.advance();
    await new Promise((r) => setImmediate(r));
    assert.equal(woke, false, "advance() alone wakes nobody");
    s.notify();
    await waiting;
    assert.equal(woke, true);
    await s.waitPast(s.version, 5);
  });
});
