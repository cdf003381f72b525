/** Have feeds on a parent: what each child hears, and how a spreader hands out each new piece about once. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { BitSet } from "../../src/common/bitset.js";
import { decodeHaveFeedLine } from "../../src/api/peer.js";
import { HaveFeeds, type SpreadPolicy } from "../../src/peer/upload/have-feed.js";
import type { StoredTask } from "../../src/peer/storage/stored-task.js";

/** The parts of a stored task a feed uses: its ID, the pieces it holds and the "piece" event. */
class FakeTask extends EventEmitter {
  readonly taskId = "a".repeat(64);
  private readonly held: number[] = [];
  constructor(initial: number[] = []) {
    super();
    this.held.push(...initial);
  }
  pieces() {
    return this.held.map((number) => ({ number, digest: "", length: 1 }));
  }
  land(n: number): void {
    this.held.push(n);
    this.emit("piece", n);
  }
}

/** A response that records the pieces its child was told of. */
class Child extends EventEmitter {
  readonly told = new Set<number>();
  writeHead(): this {
    return this;
  }
  write(text: string): boolean {
    for (const raw of text.split("\n").filter(Boolean)) {
      const line = decodeHaveFeedLine(raw);
      assert.ok(line, `a well-formed line: ${raw}`);
      if (line.type === "have") this.told.add(line.piece);
      else for (const n of BitSet.fromBase64(line.base64)) this.told.add(n);
    }
    return true;
  }
  destroy(): void {
    this.emit("close");
  }
}

const policy: SpreadPolicy = { firstReceivers: 1, tickMs: 20, idleReleaseMs: 10_000, forceReleaseMs: 20_000 };

function feeds(spreader: boolean, p: SpreadPolicy = policy) {
  return new HaveFeeds(() => spreader, p);
}

function subscribe(f: HaveFeeds, task: FakeTask, count: number): Child[] {
  return Array.from({ length: count }, () => {
    const child = new Child();
    f.subscribe(task as unknown as StoredTask, child as unknown as ServerResponse);
    return child;
  });
}

describe("have feeds", () => {
  it("a plain parent tells every child what it holds, then each piece as it lands", () => {
    const task = new FakeTask([0, 3]);
    const f = feeds(false);
    const children = subscribe(f, task, 3);
    task.land(5);
    for (const c of children) assert.deepEqual([...c.told].sort(), [0, 3, 5]);
    f.closeAll();
  });

  it("a spreader announces each new piece to one child first, consecutive pieces to different children", () => {
    const task = new FakeTask();
    const f = feeds(true);
    const children = subscribe(f, task, 4);
    for (let n = 0; n < 8; n++) task.land(n);
    for (let n = 0; n < 8; n++) {
      const receivers = children.filter((c) => c.told.has(n)).length;
      assert.equal(receivers, 1, `piece ${n} first goes to one child`);
    }
    for (const [i, c] of children.entries()) assert.equal(c.told.size, 2, `child ${i} is the first receiver of 2 of 8 pieces`);
    f.closeAll();
  });

  it("a piece nobody is fetching is offered to the next child each tick; one being sent is left to its receiver however long it takes", async () => {
    const task = new FakeTask();
    const f = feeds(true);
    const children = subscribe(f, task, 4);
    task.land(0);
    task.land(1);
    f.uploadStarted(task.taskId, 0);
    const heardOf = (n: number) => children.filter((c) => c.told.has(n)).length;
    for (let i = 0; i < 100 && heardOf(1) < 3; i++) await sleep(20);
    assert.ok(heardOf(1) >= 3, "piece 1 was not fetched: more children hear of it each tick");
    assert.equal(heardOf(0), 1, "piece 0 is being sent: its receiver passes it on");
    f.closeAll();
  });

  it("a piece whose only fetch broke off is offered again", async () => {
    const task = new FakeTask();
    const f = feeds(true);
    const children = subscribe(f, task, 4);
    task.land(0);
    f.uploadStarted(task.taskId, 0)(false);
    const heardOf = () => children.filter((c) => c.told.has(0)).length;
    for (let i = 0; i < 100 && heardOf() < 2; i++) await sleep(20);
    assert.ok(heardOf() >= 2, "the broken fetch did not put the piece in the swarm: another child hears of it");
    f.closeAll();
  });

  it("a piece sent whole once goes to everyone only when the uplink has been idle for idleReleaseMs", async () => {
    const task = new FakeTask();
    const f = feeds(true, { ...policy, idleReleaseMs: 60 });
    const children = subscribe(f, task, 4);
    task.land(0);
    task.land(1);
    f.uploadStarted(task.taskId, 0)(true);
    const busy = f.uploadStarted(task.taskId, 1);
    await sleep(200);
    const heardOf = (n: number) => children.filter((c) => c.told.has(n)).length;
    assert.equal(heardOf(0), 1, "piece 1 is still being sent: piece 0 waits for spare uplink");
    busy(true);
    for (let i = 0; i < 100 && heardOf(0) < 4; i++) await sleep(20);
    assert.equal(heardOf(0), 4, "uplink idle: piece 0 is announced to everyone");
    assert.equal(heardOf(1), 4, "and so is piece 1, sent whole too");
    f.closeAll();
  });

  it("every piece is announced to everyone forceReleaseMs after it landed, even while being sent", async () => {
    const task = new FakeTask();
    const f = feeds(true, { ...policy, forceReleaseMs: 80, tickMs: 200 });
    const children = subscribe(f, task, 4);
    task.land(0);
    f.uploadStarted(task.taskId, 0);
    await sleep(250);
    for (const c of children) assert.ok(c.told.has(0), "released");
    f.closeAll();
  });

  it("a preheated spreader hands out what it already holds in turn, not all of it to its first child", async () => {
    const task = new FakeTask([0, 1, 2, 3, 4, 5, 6, 7]);
    const f = feeds(true);
    const children = subscribe(f, task, 4);
    assert.deepEqual(
      children.map((c) => [...c.told]),
      [[0], [1], [2], [3]],
      "at subscription each child starts at once with a piece nobody else was offered",
    );
    const offered = () => new Set(children.flatMap((c) => [...c.told]));
    for (let i = 0; i < 100 && offered().size < 8; i++) await sleep(5);
    assert.equal(offered().size, 8, "the first tick offers the rest, in turn");
    // These children never fetch, so the tick also offers their first pieces to the next child.
    for (const c of children) assert.ok(c.told.size <= 3, `a share, not everything: ${[...c.told]}`);
    f.closeAll();
  });

  it("a piece that landed before any child subscribed goes to the first child at once, not at the next tick", () => {
    const task = new FakeTask();
    const f = feeds(true, { ...policy, tickMs: 60_000 });
    const [early] = subscribe(f, new FakeTask(), 1);
    task.land(0);
    const [child] = subscribe(f, task, 1);
    assert.deepEqual([...child!.told], [0], "told of piece 0 on subscribing, with no tick in between");
    assert.equal(early!.told.size, 0, "a feed of another task hears nothing");
    f.closeAll();
  });

  it("a closed feed leaves the others; ending a task's feeds closes every child", () => {
    const task = new FakeTask([1]);
    const f = feeds(false);
    const [a, b] = subscribe(f, task, 2);
    a!.destroy();
    assert.equal(f.subscribers(task.taskId), 1);
    let closed = false;
    b!.once("close", () => (closed = true));
    f.end(task.taskId);
    assert.equal(closed, true);
    assert.equal(f.subscribers(task.taskId), 0);
  });
});
