/**
 * Rendezvous (highest random weight) hashing: which member of a set owns a key.
 * Every member gets a score from a hash of (member, key); members ranked by score,
 * highest first. The owner of a key is the first live member of its ranking; when
 * it goes, the key moves to the next one and no other key moves; a member that
 * joins takes about 1/N of the keys, each from its previous owner.
 *
 * Peers, seed peers, the manager and the schedulers rank a task ID over the
 * cluster's scheduler URLs with this one function, so they agree on its owner.
 * Nothing here may need Node (the console bundles it): the hash is FNV-1a 64 on
 * the UTF-16 code units, finished with murmur3's 32-bit mixer.
 */

/** 32-bit score of `member` for `key`: FNV-1a over "member\nkey", then murmur3's finaliser so near inputs spread. */
export function rendezvousScore(member: string, key: string): number {
  let h = 0x811c9dc5;
  const s = `${member}\n${key}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** `members` ranked for `key`, owner first (ties, which need equal scores, by member name). */
export function rendezvousRank(key: string, members: readonly string[]): string[] {
  return [...new Set(members)]
    .map((m) => ({ m, s: rendezvousScore(m, key) }))
    .sort((a, b) => (a.s === b.s ? (a.m < b.m ? -1 : 1) : a.s > b.s ? -1 : 1))
    .map((x) => x.m);
}

/** The owner of `key` among `members` (undefined when there are none). */
export function rendezvousOwner(key: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = rendezvousScore(m, key);
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) [best, bestScore] = [m, s];
  }
  return best;
}
