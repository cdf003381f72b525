/** A run's figures: completion percentiles ÷ ideal, origin and seed bytes, bytes served per peer, scheduler load; a markdown table and an SVG chart. */
import type { SwarmResult } from "./swarm.js";

/** Percentile `p` (0..1) of sorted values, interpolated between ranks (as the bench does). */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  const r = p * (sorted.length - 1);
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (r - lo);
}

export interface Summary {
  name: string;
  nodes: number;
  sizeBytes: number;
  idealS: number;
  /** Nodes that were killed by the scenario (excluded from completion). */
  killed: number;
  /** Live nodes that never completed. */
  unfinished: number;
  p50S: number;
  p99S: number;
  p999S: number;
  maxS: number;
  origin: number;
  seed: number;
  /** Bytes served per node ÷ size: p10, p50, p90, max, and the share of nodes that served nothing. */
  served: { p10: number; p50: number; p90: number; max: number; none: number };
  schedulerCalls: number;
  schedulerCallsPerS: number;
  schedulerUsPerCall: number;
  /** Scheduler CPU per virtual second (ms/s): the share of one core it would need. */
  schedulerLoad: number;
  virtualS: number;
  wallS: number;
  cpuS: number;
  events: number;
  pieceMiB: number;
  seedArg: number;
}

export function summarize(r: SwarmResult): Summary {
  const s = r.scenario;
  const done = r.completionMs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  // A live node that never finished counts as infinitely late.
  const all = [...done, ...new Array<number>(r.unfinished).fill(Number.POSITIVE_INFINITY)];
  const served = r.servedBytes.map((b) => b / s.sizeBytes).sort((a, b) => a - b);
  const virtualS = r.virtualMs / 1000;
  return {
    name: s.name,
    nodes: s.nodes,
    sizeBytes: s.sizeBytes,
    idealS: r.idealMs / 1000,
    killed: r.failedNodes,
    unfinished: r.unfinished,
    p50S: percentile(all, 0.5) / 1000,
    p99S: percentile(all, 0.99) / 1000,
    p999S: percentile(all, 0.999) / 1000,
    maxS: (all.at(-1) ?? Number.NaN) / 1000,
    origin: r.originBytes / s.sizeBytes,
    seed: r.seedBytes / s.sizeBytes,
    served: {
      p10: percentile(served, 0.1),
      p50: percentile(served, 0.5),
      p90: percentile(served, 0.9),
      max: served.at(-1) ?? 0,
      none: served.filter((x) => x === 0).length / Math.max(1, served.length),
    },
    schedulerCalls: r.schedulerCalls,
    schedulerCallsPerS: r.schedulerCalls / Math.max(virtualS, 1e-9),
    schedulerUsPerCall: (r.schedulerCpuMs * 1000) / Math.max(1, r.schedulerCalls),
    schedulerLoad: r.schedulerCpuMs / Math.max(virtualS, 1e-9),
    virtualS,
    wallS: r.wallMs / 1000,
    cpuS: r.cpuMs / 1000,
    events: r.events,
    pieceMiB: r.pieceLength / 1048576,
    seedArg: r.seed,
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "—");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "—");
const ratio = (x: number, ideal: number) => (Number.isFinite(x) ? `${f1(x)} s (${f2(x / ideal)}×)` : "—");
const size = (b: number) => (b >= 1e9 ? `${f1(b / 1e9)} GB` : `${Math.round(b / 1048576)} MiB`);

export function markdownTable(rows: Summary[]): string {
  const head =
    "| scenario | nodes × size (piece) | ideal | p50 (÷ ideal) | p99 | p99.9 | max | unfinished / killed | origin ÷ size | seed ÷ size | served per peer ÷ size: p10 / p50 / p90 / max (none) | scheduler calls/s, µs CPU/call, ms CPU/s | wall, CPU (events) |\n" +
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  return (
    head +
    rows
      .map((r) =>
        [
          r.name,
          `${r.nodes.toLocaleString("en-US")} × ${size(r.sizeBytes)} (${r.pieceMiB} MiB)`,
          `${f1(r.idealS)} s`,
          ratio(r.p50S, r.idealS),
          ratio(r.p99S, r.idealS),
          ratio(r.p999S, r.idealS),
          ratio(r.maxS, r.idealS),
          `${r.unfinished} / ${r.killed}`,
          f2(r.origin),
          f2(r.seed),
          `${f2(r.served.p10)} / ${f2(r.served.p50)} / ${f2(r.served.p90)} / ${f2(r.served.max)} (${Math.round(r.served.none * 100)}%)`,
          `${Math.round(r.schedulerCallsPerS).toLocaleString("en-US")}, ${f1(r.schedulerUsPerCall)}, ${f1(r.schedulerLoad)}`,
          `${f1(r.wallS)} s, ${f1(r.cpuS)} s (${(r.events / 1e6).toFixed(2)} M)`,
        ].join(" | "),
      )
      .map((l) => `| ${l} |`)
      .join("\n")
  );
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

/** Share of nodes complete over time ÷ ideal, one line per run (an SVG, no dependencies). */
export function completionChart(results: SwarmResult[], title: string): string {
  const W = 880;
  const H = 420;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const xMax = Math.max(
    2,
    ...results.map((r) => {
      const last = r.timeline.at(-1)?.[0] ?? 0;
      return (last * 1000) / r.idealMs;
    }),
  );
  const xTop = Math.ceil(xMax);
  const px = (x: number) => m.l + (x / xTop) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - y * (H - m.t - m.b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 20 * results.length}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const y = i / 4;
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${py(y) + 4}" text-anchor="end">${Math.round(y * 100)}%</text>`);
  }
  const step = xTop <= 10 ? 1 : Math.ceil(xTop / 10);
  for (let x = 0; x <= xTop; x += step) {
    out.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${py(0)}" y2="${py(1)}" stroke="#eee"/>`);
    out.push(`<text x="${px(x)}" y="${py(0) + 16}" text-anchor="middle">${x}×</text>`);
  }
  out.push(`<text x="${W / 2}" y="${H - 10}" text-anchor="middle">time since the start ÷ ideal (size ÷ the slower of origin and node link)</text>`);
  out.push(`<text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">nodes complete</text>`);
  results.forEach((r, i) => {
    const n = r.scenario.nodes;
    // A step per completion: flat until a node completes, then up by one.
    // At most ~500 steps per line (every k-th completion and the last one).
    const k = Math.ceil(r.timeline.length / 500);
    const steps = r.timeline.filter((_, i) => i % k === 0 || i === r.timeline.length - 1);
    const pts = steps.flatMap(([t, c]) => {
      const x = px((t * 1000) / r.idealMs).toFixed(1);
      return c === 0 ? [`${x},${py(0).toFixed(1)}`] : [`${x},${py((c - 1) / n).toFixed(1)}`, `${x},${py(c / n).toFixed(1)}`];
    });
    const color = COLORS[i % COLORS.length];
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>`);
    const ly = H + 20 * i + 4;
    out.push(`<line x1="${m.l}" x2="${m.l + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    out.push(`<text x="${m.l + 30}" y="${ly + 4}">${escapeXml(`${r.scenario.name} (ideal ${(r.idealMs / 1000).toFixed(1)} s)`)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
