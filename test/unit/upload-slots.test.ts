/** The upload port's slots: a line of waiting requests instead of an immediate "busy", served in order, without slipping newcomers in. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { UploadSlots } from "../../src/peer/upload/upload-slots.js";

const answer = () => new EventEmitter() as unknown as ServerResponse;

describe("upload slots", () => {
  it("grants up to the limit at once, queues up to the line, then says full", async () => {
    const slots = new UploadSlots(2, 1);
    assert.equal(await slots.acquire(answer()), "granted");
    assert.equal(await slots.acquire(answer()), "granted");
    assert.equal(slots.free, 0);
    const waiting = slots.acquire(answer());
    assert.equal(await slots.acquire(answer()), "full", "the line is full too");
    slots.release();
    assert.equal(await waiting, "granted", "the freed slot goes to the one in line");
    assert.equal(slots.free, 0, "and is not also free for a newcomer");
    slots.release();
    slots.release();
    assert.equal(slots.free, 2);
  });

  it("serves the line in arrival order; one that left while waiting gives its place up", async () => {
    const slots = new UploadSlots(1, 3);
    await slots.acquire(answer());
    const order: string[] = [];
    const leaving = answer();
    const a = slots.acquire(answer()).then((r) => order.push(`a:${r}`));
    const b = slots.acquire(leaving).then((r) => order.push(`b:${r}`));
    const c = slots.acquire(answer()).then((r) => order.push(`c:${r}`));
    (leaving as unknown as EventEmitter).emit("close");
    await b;
    slots.release();
    await a;
    slots.release();
    await c;
    assert.deepEqual(order, ["b:gone", "a:granted", "c:granted"]);
    slots.release();
    assert.equal(slots.free, 1, "no slot lost to the one that left");
  });
});
