import { Swarm, scenarioDefaults, MiB } from "./swarm.js";
const nodes = Number(process.argv[2] ?? 32);
const link = Number(process.argv[3] ?? 1000);
const sw = new Swarm({ ...scenarioDefaults, name: "t", nodes, sizeBytes: 128 * MiB, linkMbit: link, seedLinkMbit: 400 }, { seed: 1 });
const r = await sw.run();
const c = r.completionMs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
console.log({ n: c.length, p50: c[c.length >> 1], max: c.at(-1), ideal: r.idealMs, origin: r.originBytes / (128 * MiB), seed: r.seedBytes / (128 * MiB), calls: r.schedulerCalls, cpu: r.schedulerCpuMs, wall: r.wallMs, events: r.events, virt: r.virtualMs, unfinished: r.unfinished });
for (const n of sw.nodes) if (Number.isNaN(n.doneAt)) console.log(n.hostId, n.download?.state, n.store?.held.size);
