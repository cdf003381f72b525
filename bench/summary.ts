/**
 * The swarm summary over every run of the phase: one row per (link profile,
 * node count, system), and how per-peer CPU per MiB grows from the smallest to
 * the largest node count of each profile.
 */
import { msPerMiB, peerMsPerMiB } from "./report.js";
import { verifiedCount, type Part, type RoleUse, type SwarmResult, type SwarmRow, type System } from "./swarm.js";
import type { Table } from "./table.js";
import { MiB, fmt, mean, percentile, sum } from "./util.js";

/** One run of the swarm phase: a link profile and a node count. */
export interface SwarmCell {
  /** Each node's link in Mbit/s; undefined on loopback. */
  linkMbit?: number;
  /** The topology's own description of its links. */
  links: string;
  result: SwarmResult;
}

export const profileName = (linkMbit: number | undefined): string => (linkMbit === undefined ? "loopback" : `${linkMbit} Mbit`);
export const cellName = (c: SwarmCell): string => `${c.result.peers} × ${fmt(c.result.size / MiB, 0)} MiB`;

const seconds = (ms: number) => (ms === Infinity ? "failed" : fmt(ms / 1000, 1));
const times = (a: number, b: number) => (a === Infinity ? "failed" : Number.isFinite(a / b) && b > 0 ? `${(a / b).toFixed(2)}×` : "—");

/** A client that did not bring back a verified copy counts as never done. */
function doneMs(r: SwarmRow): number[] {
  return r.clientMs.map((ms, i) => (r.clientOk[i] ? ms : Infinity));
}

/** Start of the run → last client done; Infinity when a client failed. */
function completion(r: SwarmRow): number {
  return r.clientOk.every(Boolean) ? r.completionMs : Infinity;
}

/** CPU seconds of the roles (of one part): a lower bound, marked "≥", when a process died before it could be read. */
function cpuOf(roles: RoleUse[], part?: Part): { s: number; partial: boolean } {
  const of = roles.filter((r) => part === undefined || r.part === part);
  const known = of.filter((r) => Number.isFinite(r.cpuS));
  return { s: of.length ? sum(known.map((r) => r.cpuS)) : NaN, partial: known.length < of.length };
}

const cpuCell = (c: { s: number; partial: boolean }, digits: number) => `${c.partial ? "≥ " : ""}${fmt(c.s, digits)}`;

/** Per-peer (or per-leecher) CPU-ms per MiB received + served: the mean and the worst. */
export function perPeerMsPerMiB(s: SwarmResult, system: System): { mean: number; worst: number } {
  const per = s.roles
    .filter((r) => r.system === system && r.part === "peer")
    .map(peerMsPerMiB)
    .filter(Number.isFinite);
  return per.length ? { mean: mean(per), worst: Math.max(...per) } : { mean: NaN, worst: NaN };
}

const HEADERS: [string, boolean][] = [
  ["profile", false],
  ["nodes × size", false],
  ["limit (s)", true],
  ["system", false],
  ["p50 (s)", true],
  ["p99 (s)", true],
  ["max (s)", true],
  ["÷ limit", true],
  ["÷ BitTorrent", true],
  ["origin ÷ size", true],
  ["seed sent ÷ size", true],
  ["CPU all (s)", true],
  ["CPU-ms/MiB delivered", true],
  ["sched./tracker (s)", true],
  ["seed/seeder (s)", true],
  ["peers Σ (s)", true],
  ["clients Σ (s)", true],
  ["peer CPU-ms/MiB mean", true],
  ["peer worst", true],
  ["copies ok", true],
  ["machine busy", true],
  ["notes", false],
];

/** Completion ÷ BitTorrent's; BitTorrent with a client short of a verified copy has no completion to divide by. */
function btRatio(r: SwarmRow, bt: SwarmRow | undefined): string {
  if (!bt) return "—";
  const of = completion(bt);
  return Number.isFinite(of) ? times(completion(r), of) : "— (BitTorrent failed)";
}

function summaryRow(c: SwarmCell, r: SwarmRow): string[] {
  const s = c.result;
  const lead = [profileName(c.linkMbit), cellName(c), `${fmt(s.limitMs / 1000, 1)} (${s.limitBy})`, r.system];
  if (r.missing) return [...lead, ...HEADERS.slice(lead.length, -1).map(() => "—"), r.missing];
  const bt = s.rows.find((x) => x.system === "BitTorrent" && !x.missing);
  const roles = s.roles.filter((x) => x.system === r.system);
  const all = cpuOf(roles);
  const per = perPeerMsPerMiB(s, r.system);
  const m = s.machine[r.system];
  const ms = doneMs(r);
  return [
    ...lead,
    seconds(percentile(ms, 0.5)),
    seconds(percentile(ms, 0.99)),
    seconds(percentile(ms, 1)),
    times(completion(r), s.limitMs),
    btRatio(r, bt),
    fmt(r.sourceRatio, 2),
    fmt(r.seedSentRatio, 2),
    cpuCell(all, 1),
    cpuCell({ ...all, s: msPerMiB(all.s, s.delivered) }, 2),
    cpuCell(cpuOf(roles, "control"), 2),
    cpuCell(cpuOf(roles, "seed"), 1),
    cpuCell(cpuOf(roles, "peer"), 1),
    cpuCell(cpuOf(roles, "client"), 1),
    fmt(per.mean, 2),
    fmt(per.worst, 2),
    verifiedCount(r),
    m ? `${fmt((100 * m.machineBusy) / m.machineTotal, 0)}%` : "—",
    r.extra,
  ];
}

/** Per profile: per-peer CPU per MiB at the smallest and the largest node count, and the growth. */
export function growthNotes(cells: SwarmCell[]): string[] {
  const notes: string[] = [];
  for (const link of [...new Set(cells.map((c) => c.linkMbit))]) {
    const mine = cells.filter((c) => c.linkMbit === link).sort((a, b) => a.result.peers - b.result.peers);
    const small = mine[0];
    const large = mine[mine.length - 1];
    if (!small || !large || small.result.peers === large.result.peers) continue;
    const systems = (["kiln", "BitTorrent"] as System[]).map((system) => {
      const a = perPeerMsPerMiB(small.result, system);
      const b = perPeerMsPerMiB(large.result, system);
      const step = (x: number, y: number) => `${fmt(x, 2)} → ${fmt(y, 2)} (${times(y, x)})`;
      return `${system} mean ${step(a.mean, b.mean)}, worst ${step(a.worst, b.worst)}`;
    });
    const sizes = small.result.size === large.result.size ? "" : " (the file differs: per-task fixed costs weigh more per MiB in the smaller one)";
    notes.push(
      `growth, ${profileName(link)}: per-peer CPU-ms per MiB received + served from ${cellName(small)} to ${cellName(large)}${sizes}: ${systems.join("; ")}.`,
    );
  }
  return notes;
}

export function summaryTable(cells: SwarmCell[], originMBps: number): Table {
  return {
    title: `Swarm summary: one row per link profile, node count and system (origin capped at ${originMBps} MB/s total)`,
    headers: HEADERS.map(([h]) => h),
    numeric: HEADERS.map(([, n]) => n),
    rows: cells.flatMap((c) => c.result.rows.map((r) => summaryRow(c, r))),
    notes: [
      ...growthNotes(cells),
      "limit = max(size ÷ origin rate, size ÷ node link rate): the least time any client can take" +
        (cells.some((c) => c.linkMbit !== undefined) ? "; tc caps links on the wire (headers included), so payload tops out a few % below." : "."),
      "p50 / p99 / max: per-client times (start → verified copy; p99 interpolated between ranks); a client without a verified copy counts as failed.",
      "÷ limit and ÷ BitTorrent: completion (start → last client done) ÷ the limit and ÷ BitTorrent's completion in the same cell.",
      "origin ÷ size: what the origin sent (BitTorrent: the seeder, which is its origin); seed sent: what kiln's seed peer (BitTorrent: the seeder) uploaded.",
      "CPU all: every process of the system (kiln: origin, scheduler, seed peer, peers, `kiln get`; BitTorrent: seeder, tracker, leechers; direct: origin, curl), per MiB delivered to all clients.",
      "clients Σ: the N `kiln get` (or curl) processes; BitTorrent's leechers are its clients and count under peers Σ.",
      "CPU marked ≥ leaves out a process that died during the run (its CPU cannot be read afterwards).",
      "peer CPU-ms/MiB: each peer's (leecher's) CPU ÷ the MiB it received + served; machine busy: the whole machine over the run (near 100%: the run was CPU-bound).",
    ],
  };
}
