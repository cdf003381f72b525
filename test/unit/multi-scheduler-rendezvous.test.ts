/** Rendezvous hashing of task IDs over a cluster's schedulers: what peers, seed peers and the manager all rank with. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { rendezvousOwner, rendezvousRank } from "../../src/common/rendezvous.js";
import { taskIdFor } from "../../src/common/task-id.js";

const schedulers = ["http://10.0.0.1:8002", "http://10.0.0.2:8002", "http://10.0.0.3:8002"];
const tasks = Array.from({ length: 3_000 }, (_, i) => taskIdFor({ url: `https://registry.example/v2/app/blobs/file-${i}` }));

describe("rendezvous ranking of task IDs over schedulers", () => {
  it("the same owner whatever order the list comes in, and the owner is first of the ranking", () => {
    for (const t of tasks.slice(0, 200)) {
      const owner = rendezvousOwner(t, schedulers);
      assert.equal(rendezvousOwner(t, [...schedulers].reverse()), owner);
      assert.deepEqual(rendezvousRank(t, [...schedulers].reverse()), rendezvousRank(t, schedulers));
      assert.equal(rendezvousRank(t, schedulers)[0], owner);
    }
  });

  it("tasks spread over 3 schedulers within 10 % of a third each", () => {
    const counts = new Map<string, number>();
    for (const t of tasks) counts.set(rendezvousOwner(t, schedulers)!, (counts.get(rendezvousOwner(t, schedulers)!) ?? 0) + 1);
    for (const s of schedulers) assert.ok(Math.abs((counts.get(s) ?? 0) - 1_000) < 100, `${s}: ${counts.get(s)} of 3,000`);
  });

  it("a scheduler that leaves moves only its own tasks, each to the second of its ranking", () => {
    const gone = schedulers[1]!;
    const left = schedulers.filter((s) => s !== gone);
    for (const t of tasks) {
      const ranking = rendezvousRank(t, schedulers);
      const after = rendezvousOwner(t, left);
      if (ranking[0] === gone) assert.equal(after, ranking[1]);
      else assert.equal(after, ranking[0], "a task of a scheduler that stayed does not move");
    }
  });

  it("a scheduler that joins takes tasks only for itself, about a quarter of them", () => {
    const joined = [...schedulers, "http://10.0.0.4:8002"];
    let taken = 0;
    for (const t of tasks) {
      const after = rendezvousOwner(t, joined);
      if (after === joined[3]) taken++;
      else assert.equal(after, rendezvousOwner(t, schedulers), "no task moves between the schedulers that were there");
    }
    assert.ok(Math.abs(taken - 750) < 100, `${taken} of 3,000 tasks rank the newcomer first`);
  });
});
