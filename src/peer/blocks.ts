/**
 * 1 MiB blocks reused for the bytes a peer moves. Allocating one per MiB costs page
 * faults and, worse, V8 counts every such buffer as external memory and runs a full
 * mark-compact each time tens of MiB of them accumulate: measured at 2.5× the CPU of
 * receiving into reused blocks.
 *
 * A block is either owned (take/give: one user at a time) or shared: its producer
 * hands views of it to holders that retain and release them, and it returns to the
 * pool only once the producer retired it and no view is held any more.
 */
export const BLOCK_SIZE = 1024 * 1024;
/** Free blocks kept; beyond that a block is left to the garbage collector. */
const MAX_FREE = 32;
const free: Buffer[] = [];

interface Shared {
  block: Buffer;
  views: number;
  retired: boolean;
}
const shared = new WeakMap<ArrayBufferLike, Shared>();

export function takeBlock(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
}

export function giveBlock(block: Buffer): void {
  if (free.length < MAX_FREE && block.length === BLOCK_SIZE) free.push(block);
}

/** A block whose views are handed out; `retireBlock` once nothing more is put in it. */
export function takeSharedBlock(): Buffer {
  const block = takeBlock();
  shared.set(block.buffer, { block, views: 0, retired: false });
  return block;
}

export function retireBlock(block: Buffer): void {
  const s = shared.get(block.buffer);
  if (!s) return;
  s.retired = true;
  recycle(s);
}

/** Keeps the block under `view` from reuse until `releaseView`; does nothing for other buffers. */
export function retainView(view: Buffer): void {
  const s = shared.get(view.buffer);
  if (s) s.views++;
}

export function releaseView(view: Buffer): void {
  const s = shared.get(view.buffer);
  if (!s) return;
  s.views--;
  recycle(s);
}

function recycle(s: Shared): void {
  if (!s.retired || s.views > 0) return;
  shared.delete(s.block.buffer);
  giveBlock(s.block);
}
