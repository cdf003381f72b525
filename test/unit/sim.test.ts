/**
 * The swarm simulator (sim/): deterministic by seed, and driven by kiln's own decision
 * code: changing a rule in src/ (the scheduler's parent weights, the dispatcher's
 * per-parent limit) changes what the simulated swarm does.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PARENT_WEIGHTS } from "../../src/scheduler/scheduling/evaluator/evaluator.js";
import { summarize } from "../../sim/report.js";
import { MiB, Swarm, scenarioDefaults, type RunOptions, type Scenario } from "../../sim/swarm.js";

const small: Scenario = { ...scenarioDefaults, name: "test", nodes: 16, sizeBytes: 64 * MiB, linkMbit: 1000, originMBps: 100, seedLinkMbit: 1000 };

const run = (s: Scenario, opts: RunOptions) => new Swarm(s, opts).run();

test("the same seed gives the same swarm, another seed another one", async () => {
  const a = await run(small, { seed: 7 });
  const b = await run(small, { seed: 7 });
  const c = await run(small, { seed: 8 });
  assert.deepEqual(a.completionMs, b.completionMs);
  assert.deepEqual(a.servedBytes, b.servedBytes);
  assert.notDeepEqual(a.servedBytes, c.servedBytes);
  // Every node got the file, and the origin sent it once (the seed peer fetched it).
  assert.equal(a.unfinished, 0);
  assert.equal(a.originBytes, small.sizeBytes);
});

test("the scheduler's own parent weights decide who serves: with useful pieces counting against a parent, the swarm changes", async () => {
  // Nodes arrive over 3 s, so later ones choose among parents holding more or fewer pieces.
  const spread = { ...small, nodes: 24, arrivalSpreadMs: 3000 };
  const before = summarize(await run(spread, { seed: 3 }));
  const saved = PARENT_WEIGHTS.isSeed;
  const weights = PARENT_WEIGHTS as { isSeed: number };
  try {
    // The seed first in every child's parent list, and the child's other parents the ones least useful.
    weights.isSeed = 10;
    (PARENT_WEIGHTS as { usefulPieces: number }).usefulPieces = -0.4;
    const changed = summarize(await run(spread, { seed: 3 }));
    assert.notDeepEqual(changed.served, before.served);
    assert.notEqual(changed.p50S, before.p50S);
  } finally {
    weights.isSeed = saved;
    (PARENT_WEIGHTS as { usefulPieces: number }).usefulPieces = 0.4;
  }
  // Back to kiln's weights, back to the same swarm.
  assert.deepEqual(summarize(await run(spread, { seed: 3 })).served, before.served);
});

test("the dispatcher's per-parent limit, set through its real options, changes the swarm", async () => {
  const kiln = await run(small, { seed: 5 });
  const onePerParent = await run(small, { seed: 5, download: { piecesPerParent: 1, concurrentPieces: 1 } });
  assert.notDeepEqual(onePerParent.completionMs, kiln.completionMs);
  // One piece at a time from one parent leaves a child's link idle between pieces: it is slower.
  assert.ok(summarize(onePerParent).maxS > summarize(kiln).maxS);
});

test("nodes dying mid-download: the others finish and the origin still sends the file once", async () => {
  const r = await run({ ...small, nodes: 40, sizeBytes: 32 * MiB, failFraction: 0.1 }, { seed: 2 });
  assert.equal(r.failedNodes, 4);
  assert.equal(r.unfinished, 0);
  assert.equal(r.completionMs.filter((x) => !Number.isNaN(x)).length, 36);
  assert.equal(r.originBytes, 32 * MiB);
});
