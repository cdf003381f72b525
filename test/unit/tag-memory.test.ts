/** The peer's memory of tags (peer/proxy/tag-memory.ts): what a registry last answered, kept across restarts. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { TagMemory, tagKey } from "../../src/peer/proxy/tag-memory.js";

const log = pino({ level: "silent" });
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const OCI = "application/vnd.oci.image.manifest.v1+json";

describe("tag memory", () => {
  it("keeps the last answer per registry, repository and tag, on disk, the least recently answered forgotten first", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-tags-"));
    try {
      const path = join(dir, "registry-tags.json");
      const m = await TagMemory.load(path, { maxEntries: 2, saveDelayMs: 10 }, log);
      const a = tagKey("http://r:5000", "app", "v1");
      const b = tagKey("http://r:5000", "app", "v2");
      const c = tagKey("http://other:5000", "app", "v1");
      m.remember(a, { digest: D1, mediaType: OCI, size: 10, anonymous: true }, 1_000);
      m.remember(b, { digest: D1, mediaType: OCI, size: 10 }, 2_000);
      m.remember(a, { digest: D2, mediaType: OCI, size: 20 }, 3_000);
      assert.deepEqual(
        m.recall(a),
        { digest: D2, mediaType: OCI, size: 20, anonymous: null, at: 3_000 },
        "a moved tag: its new answer, whether public not known yet",
      );
      m.remember(c, { digest: D1, mediaType: OCI, size: 10 }, 4_000);
      assert.equal(m.recall(b), undefined, "the least recently answered went first");
      m.setAnonymous(a, D1, true);
      assert.equal(m.recall(a)?.anonymous, null, "a probe of the digest the tag no longer names changes nothing");
      m.setAnonymous(a, D2, true);
      await m.flush();
      const back = await TagMemory.load(path, { maxEntries: 2, saveDelayMs: 10 }, log);
      assert.deepEqual(back.recall(a), { digest: D2, mediaType: OCI, size: 20, anonymous: true, at: 3_000 });
      assert.equal(back.recall(c)?.digest, D1);
      assert.equal(back.size, 2);
      assert.match(await readFile(path, "utf8"), /"version":1/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a damaged file starts empty instead of failing the peer", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-tags-"));
    try {
      const path = join(dir, "registry-tags.json");
      await writeFile(path, '{"version":1,"tags":{"x":{"digest":"sha256:nothex"}}}');
      assert.equal((await TagMemory.load(path, { maxEntries: 10, saveDelayMs: 10 }, log)).size, 0);
      await writeFile(path, "not json");
      assert.equal((await TagMemory.load(path, { maxEntries: 10, saveDelayMs: 10 }, log)).size, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
