/**
 * `npm run sim -- [options]`: runs swarm scenarios in virtual time with kiln's own
 * scheduling and piece-selection code, prints a table and writes it with an SVG chart.
 *
 *   --scenario NAME     a scenario (repeatable; a part of its name is enough); default: every default scenario
 *   --validate          the bench's 32-node cells instead, each with --seeds seeds, beside the bench's figures
 *   --seed N            the random seed (default 1); the same seed gives the same result
 *   --seeds N           validation: seeds 1..N (default 3)
 *   --out PREFIX        write PREFIX.md and PREFIX.svg (default: print only)
 *   --json DIR          also write each run's result as JSON into DIR (for --from)
 *   --from DIR          build the table and chart from JSON results written before (no runs)
 *   --list              list the scenarios
 */
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BENCH_FIGURES, SCENARIOS, VALIDATION, findScenarios } from "./scenarios.js";
import { completionChart, markdownTable, summarize, type Summary } from "./report.js";
import { Swarm, type Scenario, type SwarmResult } from "./swarm.js";

const options = {
  scenario: { type: "string", multiple: true },
  validate: { type: "boolean", default: false },
  seed: { type: "string", default: "1" },
  seeds: { type: "string", default: "3" },
  out: { type: "string" },
  json: { type: "string" },
  from: { type: "string" },
  list: { type: "boolean", default: false },
} as const;

function parseOptions() {
  try {
    return parseArgs({ options }).values;
  } catch (err) {
    // A bad option: one line, not a stack trace.
    console.error(`npm run sim: ${(err as Error).message}; the options are at the top of sim/run.ts (--list names the scenarios)`);
    process.exit(2);
  }
}
const values = parseOptions();

if (values.list) {
  for (const s of [...SCENARIOS, ...VALIDATION]) console.log(s.name);
  process.exit(0);
}

export async function runOne(s: Scenario, seed: number): Promise<SwarmResult> {
  const result = await new Swarm(s, { seed }).run();
  const m = summarize(result);
  console.error(
    `${s.name} (seed ${seed}): p50 ${m.p50S.toFixed(1)} s, max ${m.maxS.toFixed(1)} s (ideal ${m.idealS.toFixed(1)} s), origin ${m.origin.toFixed(2)}, seed ${m.seed.toFixed(2)}, ${m.unfinished} unfinished, wall ${m.wallS.toFixed(1)} s`,
  );
  if (values.json) {
    mkdirSync(values.json, { recursive: true });
    const slug = `${s.name.replace(/[^A-Za-z0-9]+/g, "-")}-seed${seed}.json`;
    writeFileSync(join(values.json, slug), JSON.stringify(result));
  }
  return result;
}

const results: SwarmResult[] = [];
if (values.from) {
  for (const f of readdirSync(values.from).sort()) if (f.endsWith(".json")) results.push(JSON.parse(readFileSync(join(values.from, f), "utf8")) as SwarmResult);
  // In the order the scenarios are defined, seeds in order.
  const order = [...SCENARIOS, ...VALIDATION].map((s) => s.name);
  results.sort((a, b) => order.indexOf(a.scenario.name) - order.indexOf(b.scenario.name) || a.seed - b.seed);
} else if (values.validate) {
  const seeds = Number(values.seeds);
  const chosen = values.scenario ? findScenarios(values.scenario) : VALIDATION;
  for (const s of chosen) for (let seed = 1; seed <= seeds; seed++) results.push(await runOne(s, seed));
} else {
  const chosen = values.scenario ? findScenarios(values.scenario) : SCENARIOS;
  for (const s of chosen) results.push(await runOne(s, Number(values.seed)));
}

const rows = results.map(summarize);
const validation = results.some((r) => r.scenario.name.startsWith("bench "));
const md = validation ? validationReport(rows) : markdownTable(rows);
console.log(md);
if (values.out) {
  const commit = (() => {
    try {
      return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    } catch {
      return "unknown";
    }
  })();
  const title = validation ? "kiln swarm simulator — the bench's 32-node cells" : "kiln swarm simulator — default scenarios";
  const header = [
    `# ${title}`,
    "",
    `- date: ${new Date().toISOString()}; commit: ${commit}; machine: ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, Node ${process.version}`,
    values.from
      ? `- runs: \`npm run sim -- ${validation ? `--validate --seeds ${Math.max(...results.map((r) => r.seed))}` : "--scenario NAME"} --json DIR\` (in one or more processes), assembled with \`--from DIR\`; the same seed gives the same figures (wall and CPU times aside)`
      : `- command: \`npm run sim -- ${process.argv.slice(2).join(" ")}\`; the same seed gives the same figures (wall and CPU times aside)`,
    "- ideal = max(size ÷ origin rate, size ÷ node link); p50 / p99 / p99.9 / max over the nodes' completion times (join → every piece verified), a live node that never completed counts as infinitely late; killed nodes (the scenario's failures) are left out and counted",
    "- served per peer: bytes each node (not the seed) uploaded ÷ size, its p10 / p50 / p90 / max, and the share of nodes that uploaded nothing",
    "- scheduler: calls into kiln's SchedulerService per virtual second (announces, registrations, schedule calls and their answers, reports, GC), the real CPU time of those calls in this process per call, and per virtual second (ms/s: 1000 = one core); HTTP and zod on the wire are not included",
    "- wall, CPU: this process's run time and CPU time (the machine is shared: wall overstates it); events: virtual-clock events run",
    "",
  ].join("\n");
  writeFileSync(`${values.out}.md`, `${header}\n${md}\n`);
  const chartRuns = validation ? results.filter((r) => r.seed === 1) : results;
  writeFileSync(
    `${values.out}.svg`,
    completionChart(chartRuns, validation ? "bench cells in the simulator (seed 1)" : "kiln swarm simulator: nodes complete over time"),
  );
  console.error(`wrote ${values.out}.md and ${values.out}.svg`);
}

/** Each validation scenario's runs (mean and range over seeds) beside the bench's figures. */
function validationReport(all: Summary[]): string {
  const byName = new Map<string, Summary[]>();
  for (const r of all) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  const lines = ["| cell | source | p50 (s) | max (s) | origin ÷ size | seed sent ÷ size |", "| --- | --- | ---: | ---: | ---: | ---: |"];
  const range = (xs: number[], d = 1) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.length > 1 ? `${mean.toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})` : mean.toFixed(d);
  };
  const shown = new Set<string>();
  for (const [name, rs] of byName) {
    const profile = name.includes("40 Mbit") ? "40" : "1000";
    const b = BENCH_FIGURES[profile];
    if (!shown.has(profile)) {
      shown.add(profile);
      lines.push(
        `| ${profile === "40" ? "40 Mbit" : "1 Gbit"} | bench, ${b.run} | ${b.p50.toFixed(1)} | ${b.max.toFixed(1)} | ${b.origin.toFixed(2)} | ${b.seed.toFixed(2)} |`,
      );
    }
    lines.push(
      `| | simulator: ${name.replace(/^bench 32 × 128 MiB, /, "")} (${rs.length} seed${rs.length > 1 ? "s" : ""}: mean (range)) | ${range(rs.map((r) => r.p50S))} | ${range(rs.map((r) => r.maxS))} | ${range(
        rs.map((r) => r.origin),
        2,
      )} | ${range(
        rs.map((r) => r.seed),
        2,
      )} |`,
    );
  }
  return `${lines.join("\n")}\n\n${markdownTable(all)}`;
}
