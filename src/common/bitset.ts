/** Piece bitmaps travel as base64 so a 10,000-piece task costs ~1.7 KB on the wire. */
export class BitSet {
  private bytes: Uint8Array;
  private count = 0;

  constructor(size = 0) {
    this.bytes = new Uint8Array(Math.ceil(size / 8));
  }

  static fromBase64(s: string): BitSet {
    const b = new BitSet();
    b.bytes = new Uint8Array(Buffer.from(s, "base64"));
    for (const byte of b.bytes) b.count += popcount(byte);
    return b;
  }

  has(n: number): boolean {
    const byte = this.bytes[n >> 3];
    return byte !== undefined && (byte & (1 << (n & 7))) !== 0;
  }

  add(n: number): void {
    if (this.has(n)) return;
    const idx = n >> 3;
    if (idx >= this.bytes.length) {
      const grown = new Uint8Array(Math.max(idx + 1, this.bytes.length * 2));
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes[idx] = (this.bytes[idx] ?? 0) | (1 << (n & 7));
    this.count++;
  }

  get size(): number {
    return this.count;
  }

  /** How many members of this set `other` lacks, a byte at a time. */
  countNotIn(other: BitSet): number {
    let n = 0;
    for (let i = 0; i < this.bytes.length; i++) n += popcount(this.bytes[i]! & ~(other.bytes[i] ?? 0) & 0xff);
    return n;
  }

  toBase64(): string {
    let used = this.bytes.length;
    while (used > 0 && this.bytes[used - 1] === 0) used--;
    return Buffer.from(this.bytes.subarray(0, used)).toString("base64");
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = 0; i < this.bytes.length * 8; i++) if (this.has(i)) yield i;
  }
}

/** Set bits of every byte value. */
const BITS_IN_BYTE = Uint8Array.from({ length: 256 }, (_, x) => {
  let c = 0;
  for (; x; x &= x - 1) c++;
  return c;
});

function popcount(byte: number): number {
  return BITS_IN_BYTE[byte]!;
}
