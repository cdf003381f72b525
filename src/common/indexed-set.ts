/**
 * A set kept in a dense array: add, delete and membership in O(1) (delete moves
 * the last member into the hole), each member's position, and members in random
 * order drawn lazily, so a caller that needs k of n members pays for k, not n.
 */
/** Below this size randomOrder() shuffles a copy; above it, it draws positions at random and skips repeats. */
const SHUFFLE_UP_TO = 64;

export class IndexedSet<T> {
  private readonly items: T[] = [];
  private readonly positions = new Map<T, number>();

  get size(): number {
    return this.items.length;
  }

  has(x: T): boolean {
    return this.positions.has(x);
  }

  add(x: T): void {
    if (this.positions.has(x)) return;
    this.positions.set(x, this.items.length);
    this.items.push(x);
  }

  delete(x: T): boolean {
    const i = this.positions.get(x);
    if (i === undefined) return false;
    const last = this.items.pop()!;
    this.positions.delete(x);
    if (last !== x) {
      this.items[i] = last;
      this.positions.set(last, i);
    }
    return true;
  }

  /** Position in [0, size), dense; it changes when a member is deleted (the last one takes its place). */
  indexOf(x: T): number | undefined {
    return this.positions.get(x);
  }

  /**
   * Every member once, in random order, drawn lazily: a caller that takes k of n
   * members pays for about k draws (meant for taking a few of many; the set is not
   * changed). Do not add or delete while iterating.
   */
  *randomOrder(random: () => number = Math.random): IterableIterator<T> {
    const n = this.items.length;
    if (n <= SHUFFLE_UP_TO) {
      const copy = this.items.slice();
      for (let i = 0; i < n; i++) {
        const j = i + Math.floor(random() * (n - i));
        const x = copy[j]!;
        copy[j] = copy[i]!;
        yield x;
      }
      return;
    }
    const drawn = new Set<number>();
    while (drawn.size < n) {
      const i = Math.floor(random() * n);
      if (drawn.has(i)) continue;
      drawn.add(i);
      yield this.items[i]!;
    }
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.items[Symbol.iterator]();
  }
}
