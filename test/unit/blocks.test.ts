/** Reused blocks: a shared block goes back to the pool only when retired and no view of it is held. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BLOCK_SIZE, giveBlock, releaseView, retainView, retireBlock, takeBlock, takeSharedBlock } from "../../src/peer/blocks.js";

/** Drains the pool's free blocks so the next take is fresh, and returns them. */
function drain(): Buffer[] {
  const taken: Buffer[] = [];
  for (let i = 0; i < 64; i++) taken.push(takeBlock());
  return taken;
}

describe("blocks", () => {
  it("a shared block with a view still held is not handed out again, even once retired", () => {
    drain();
    const block = takeSharedBlock();
    const view = block.subarray(100, 200);
    retainView(view);
    retireBlock(block);
    const next = takeBlock();
    assert.notEqual(next.buffer, block.buffer, "not reused while a view is held");
    releaseView(view);
    assert.equal(takeBlock().buffer, block.buffer, "reused once the last view is released");
  });

  it("a block not yet retired is not reused however its views come and go; retiring twice returns it once", () => {
    drain();
    const block = takeSharedBlock();
    const v = block.subarray(0, 10);
    retainView(v);
    releaseView(v);
    assert.notEqual(takeBlock().buffer, block.buffer);
    retireBlock(block);
    retireBlock(block);
    const a = takeBlock();
    const b = takeBlock();
    assert.equal(a.buffer, block.buffer);
    assert.notEqual(b.buffer, block.buffer, "handed out once only");
  });

  it("other buffers are ignored; only whole blocks are pooled", () => {
    drain();
    const other = Buffer.alloc(10);
    retainView(other);
    releaseView(other);
    giveBlock(Buffer.allocUnsafeSlow(BLOCK_SIZE / 2));
    assert.equal(takeBlock().length, BLOCK_SIZE);
  });
});
