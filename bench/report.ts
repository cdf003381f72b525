/** The bench's tables: the swarm, CPU and memory per role, the single node, and the project's goals as ratios. */
import type { ImageRow } from "./image-pull.js";
import type { SingleRow } from "./single.js";
import { verifiedCount, type RoleUse, type SwarmResult, type System } from "./swarm.js";
import type { Table } from "./table.js";
import { MiB, fmt, mbps, mean, percentile, ratio, sum } from "./util.js";

export function swarmTable(s: SwarmResult, title: string): Table {
  const bt = s.rows.find((r) => r.system === "BitTorrent" && !r.missing);
  return {
    title,
    headers: [
      "path",
      "source bytes ÷ size",
      "completion (s)",
      "÷ limit",
      "÷ BitTorrent",
      "mean per-client (MB/s)",
      "min–max per-client (MB/s)",
      "sha256 ok",
      "notes",
    ],
    numeric: [false, true, true, true, true, true, true, true, false],
    rows: s.rows.map((r) => {
      if (r.missing) return [r.path, "—", "—", "—", "—", "—", "—", "—", r.missing];
      const rates = r.clientMs.map((ms) => mbps(s.size, ms));
      return [
        r.path,
        fmt(r.sourceRatio, 2),
        fmt(r.completionMs / 1000, 1),
        ratio(r.completionMs, s.limitMs),
        bt ? ratio(r.completionMs, bt.completionMs) : "—",
        fmt(mean(rates), 1),
        `${fmt(Math.min(...rates), 1)}–${fmt(Math.max(...rates), 1)}`,
        verifiedCount(r),
        r.extra,
      ];
    }),
    notes: [
      "source = the origin for kiln and direct, the seeder for BitTorrent; " +
        `÷ limit = completion ÷ max(size ÷ origin rate, size ÷ node link rate) = ÷ ${fmt(s.limitMs / 1000, 1)} s (set by the ${s.limitBy}).`,
      ...s.notes,
    ],
  };
}

export const msPerMiB = (cpuS: number, bytes: number): number => (bytes > 0 ? (cpuS * 1000) / (bytes / MiB) : NaN);
const mib = (b: number) => (Number.isFinite(b) ? fmt(b / MiB, 0) : "—");
/** CPU-ms per MiB a peer (or leecher) received plus served. */
export const peerMsPerMiB = (r: RoleUse): number => msPerMiB(r.cpuS, r.inBytes + r.outBytes);

function roleRow(r: RoleUse, delivered: number, label = r.role): string[] {
  const control = r.part === "control";
  const perMiB = control ? msPerMiB(r.cpuS, delivered) : peerMsPerMiB(r);
  return [r.system, label, fmt(r.cpuS, 2), mib(r.inBytes), mib(r.outBytes), `${fmt(perMiB, 2)}${control ? " (per MiB delivered)" : ""}`, mib(r.peakRss)];
}

/** The worst member of a group (highest CPU per MiB moved) and the group's sum. */
function groupRows(members: RoleUse[], delivered: number, noun: string): string[][] {
  if (!members.length) return [];
  const worst = members.reduce((a, b) => (peerMsPerMiB(b) > peerMsPerMiB(a) ? b : a));
  const total: RoleUse = {
    system: members[0]!.system,
    role: `${noun}s, all ${members.length} (sum)`,
    part: "peer",
    count: members.length,
    cpuS: sum(members.map((m) => m.cpuS)),
    inBytes: sum(members.map((m) => m.inBytes)),
    outBytes: sum(members.map((m) => m.outBytes)),
    peakRss: Math.max(...members.map((m) => m.peakRss)),
  };
  return [roleRow(total, delivered), roleRow(worst, delivered, `worst ${noun} (${worst.role})`)];
}

/** One line on every member of a group: each one for a few, quantiles for many. */
function membersNote(members: RoleUse[]): string {
  if (members.length <= 16) return members.map((r) => `${r.role} ${fmt(peerMsPerMiB(r), 2)} ms/MiB, ${mib(r.peakRss)} MiB`).join("; ");
  const per = members.map(peerMsPerMiB);
  const rss = members.map((r) => r.peakRss / MiB);
  const q = (xs: number[], digits: number) => [0, 0.5, 0.9, 1].map((p) => fmt(percentile(xs, p), digits)).join(" / ");
  return `CPU-ms per MiB min / p50 / p90 / max ${q(per, 2)}; peak RSS (MiB) ${q(rss, 0)}`;
}

const NOUN: Record<System, string> = { kiln: "peer", BitTorrent: "leecher", direct: "client" };

export function rolesTable(s: SwarmResult, title = "CPU and peak memory per role during the swarm runs"): Table {
  const rows: string[][] = [];
  const perMember: string[] = [];
  for (const system of ["kiln", "BitTorrent", "direct"] as System[]) {
    const roles = s.roles.filter((r) => r.system === system);
    if (!roles.length) continue;
    const members = roles.filter((x) => x.part === "peer");
    for (const r of roles.filter((x) => x.part !== "peer")) rows.push(roleRow(r, s.delivered));
    rows.push(...groupRows(members, s.delivered, NOUN[system]));
    if (members.length) perMember.push(`each ${system} ${NOUN[system]}: ${membersNote(members)}.`);
    const all = sum(roles.map((r) => r.cpuS));
    rows.push([system, "all processes above", fmt(all, 2), "", "", `${fmt(msPerMiB(all, s.delivered), 2)} (per MiB delivered)`, ""]);
    const m = s.machine[system];
    if (m) {
      rows.push([
        system,
        `whole machine during the run (${fmt(m.wallS, 1)} s, ${fmt((100 * m.machineBusy) / m.machineTotal, 0)}% busy)`,
        fmt(m.machineBusy, 2),
        "",
        "",
        `${fmt(msPerMiB(m.machineBusy, s.delivered), 2)} (per MiB delivered)`,
        "",
      ]);
    }
  }
  return {
    title,
    headers: ["system", "role", "CPU (s)", "MiB in", "MiB out", "CPU-ms per MiB in+out", "peak RSS (MiB)"],
    numeric: [false, false, true, true, true, true, true],
    rows,
    notes: [
      `MiB delivered = ${mib(s.delivered)} (every client's copy). Control-plane roles (scheduler, tracker) and totals are per MiB delivered.`,
      "Peak RSS is VmHWM from /proc/<pid>/status, read just before each daemon is stopped; for short-lived clients it is sampled every 200 ms.",
      "CPU is utime + stime of each process over the run (clients: of all of them, summed when they exit).",
      "The whole-machine row includes other work on the machine.",
      ...perMember,
    ],
  };
}

export function singleTable(rows: SingleRow[], sizeMiB: number, startupMs: number): Table {
  const anchor = (kind: SingleRow["kind"]) => {
    const r = rows.find((x) => x.kind === kind);
    return r ? mbps(r.bytes, r.ms) : NaN;
  };
  const curl = anchor("curl");
  const pipe = anchor("pipe");
  return {
    title: `Single node: ${sizeMiB} MiB from an unlimited local origin (loopback)`,
    headers: [
      "path",
      "time (s)",
      "MB/s",
      "÷ curl",
      "÷ Node pipe",
      "origin bytes ÷ size",
      "client CPU (s)",
      "kiln daemons CPU (s)",
      "client peak RSS (MiB)",
      "sha256 ok",
    ],
    numeric: [false, true, true, true, true, true, true, true, true, true],
    rows: rows.map((r) => {
      const rate = mbps(r.bytes, r.ms);
      return [
        r.path,
        fmt(r.ms / 1000, 2),
        fmt(rate, 0),
        ratio(rate, curl),
        ratio(rate, pipe),
        fmt(r.originRatio, 2),
        fmt(r.clientCpuS, 2),
        fmt(r.daemonCpuS, 2),
        mib(r.peakRss),
        r.verified ? "yes" : "NO",
      ];
    }),
    notes: [
      "Every row but the in-process one is one process timed from spawn to exit; its output file is checked against the payload's sha256.",
      "curl and the Node pipe write to the page cache (no fsync); `kiln get` fsyncs its output before the rename, and its peer also stores its own copy.",
      `starting a \`kiln get\` process alone costs ~${fmt(startupMs / 1000, 2)} s (median of 3 × \`kiln get --help\`), included in every kiln time.`,
      "kiln daemons CPU = scheduler + seed peer + both peers over the row.",
    ],
  };
}

interface Goal {
  goal: string;
  value: number;
  shown: string;
  target: string;
  met: (v: number) => boolean;
}

function swarmGoals(swarm: SwarmResult, where: string, x: (v: number) => string): Goal[] {
  const goals: Goal[] = [];
  const swarmRow = (s: System) => swarm.rows.find((r) => r.system === s && !r.missing);
  const kiln = swarmRow("kiln");
  const bt = swarmRow("BitTorrent");
  if (kiln) {
    const v = kiln.completionMs / swarm.limitMs;
    goals.push({
      goal: `${where}: kiln completion ÷ the limit (size ÷ ${swarm.limitBy} rate)`,
      value: v,
      shown: x(v),
      target: "≤ 1.30×",
      met: (n) => n <= 1.3,
    });
  }
  if (kiln && bt) {
    const v = kiln.completionMs / bt.completionMs;
    goals.push({ goal: `${where}: kiln completion ÷ BitTorrent completion`, value: v, shown: x(v), target: "≤ 1.00×", met: (n) => n <= 1 });
    const cpuOf = (s: System) => sum(swarm.roles.filter((r) => r.system === s).map((r) => r.cpuS));
    const c = cpuOf("kiln") / cpuOf("BitTorrent");
    goals.push({ goal: `${where}: CPU of all kiln processes ÷ all BitTorrent processes`, value: c, shown: x(c), target: "≤ 2.00×", met: (n) => n <= 2 });
    const mk = swarm.machine.kiln;
    const mb = swarm.machine.BitTorrent;
    if (mk && mb) {
      const w = mk.machineBusy / mb.machineBusy;
      goals.push({ goal: `${where}: whole-machine CPU, kiln run ÷ BitTorrent run`, value: w, shown: x(w), target: "≤ 2.00×", met: (n) => n <= 2 });
    }
  }
  const peers = swarm.roles.filter((r) => r.system === "kiln" && r.part === "peer");
  if (peers.length) {
    const worst = Math.max(...peers.map(peerMsPerMiB));
    goals.push({ goal: `${where}: CPU-ms per MiB received + served, worst peer`, value: worst, shown: fmt(worst, 2), target: "≤ 3", met: (n) => n <= 3 });
    const rss = Math.max(...peers.map((p) => p.peakRss)) / MiB;
    goals.push({ goal: `${where}: peak RSS of the largest peer (MiB)`, value: rss, shown: fmt(rss, 0), target: "≤ 150", met: (n) => n <= 150 });
  }
  return goals;
}

function singleGoals(single: SingleRow[], x: (v: number) => string): Goal[] {
  const goals: Goal[] = [];
  const rate = (kind: SingleRow["kind"]) => {
    const r = single.find((s) => s.kind === kind);
    return r ? mbps(r.bytes, r.ms) : NaN;
  };
  const single3: [SingleRow["kind"], string, number][] = [
    ["kiln-hit", "hit (node holds the content)", 1.0],
    ["kiln-warm", "from another peer", 0.5],
    ["kiln-cold", "cold through the seed", 0.4],
  ];
  for (const [kind, label, target] of single3) {
    const v = rate(kind) / rate("curl");
    const goal = `single node: kiln get ${label} ÷ curl -o (throughput)`;
    goals.push({ goal, value: v, shown: x(v), target: `≥ ${target.toFixed(2)}×`, met: (n) => n >= target });
  }
  for (const [kind, label] of [
    ["kiln-warm", "from another peer"],
    ["kiln-cold", "cold through the seed"],
  ] as const) {
    const v = rate(kind) / rate("pipe");
    goals.push({ goal: `single node: kiln get ${label} ÷ minimal Node pipe`, value: v, shown: x(v), target: "≥ 0.90×", met: (n) => n >= 0.9 });
  }
  return goals;
}

/** `swarm` is the run the swarm goals are read from (undefined when the swarm phase did not run); `where` names it. */
export function goalsTable(swarm: SwarmResult | undefined, where: string, single: SingleRow[], images: ImageRow[]): Table {
  const goals: Goal[] = [];
  const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "—");
  if (swarm) goals.push(...swarmGoals(swarm, where, x));
  if (single.length) goals.push(...singleGoals(single, x));
  const img = (kind: ImageRow["kind"]) => images.find((r) => r.kind === kind);
  const warm1 = img("kiln-warm-1");
  const direct1 = img("direct-1");
  if (warm1 && direct1) {
    const v = warm1.ms / direct1.ms;
    goals.push({ goal: "image pull (skopeo): 1 node warm ÷ direct (time)", value: v, shown: x(v), target: "≤ 1.20×", met: (n) => n <= 1.2 });
  }
  const ctrWarm = img("ctr-kiln-warm-1");
  const ctrDirect = img("ctr-direct-1");
  if (ctrWarm && ctrDirect) {
    const v = ctrWarm.ms / ctrDirect.ms;
    goals.push({ goal: "image pull (ctr): 1 node warm ÷ direct (time)", value: v, shown: x(v), target: "≤ 1.20×", met: (n) => n <= 1.2 });
  }
  const rttDirect = img("rtt-direct-1");
  for (const [kind, what] of [
    ["rtt-kiln-warm-1", "warm through a fresh peer (swarm)"],
    ["rtt-kiln-local-1", "warm through the node's peer (it holds the image)"],
  ] as const) {
    const warm = img(kind);
    if (!warm || !rttDirect) continue;
    const v = warm.ms / rttDirect.ms;
    goals.push({
      goal: `image pull (skopeo), registry 20 ms RTT away: ${what} ÷ direct (time)`,
      value: v,
      shown: x(v),
      target: "≤ 0.70×",
      met: (n) => n <= 0.7,
    });
  }
  for (const kind of ["kiln-down-1", "ctr-kiln-down-1", "rtt-kiln-down-1"] as const) {
    const down = img(kind);
    if (!down) continue;
    goals.push({
      goal: `image pull, registry down: ${down.path}`,
      value: down.ok ? 1 : 0,
      shown: down.ok ? `pulled in ${(down.ms / 1000).toFixed(2)} s` : "failed",
      target: "pulls",
      met: (n) => n === 1,
    });
  }
  const crowdKiln = img("kiln-n");
  const crowdDirect = img("direct-n");
  if (crowdKiln && crowdDirect) {
    const v = crowdKiln.ms / crowdDirect.ms;
    goals.push({ goal: "image pull (skopeo): nodes at once, cold, kiln ÷ direct (time)", value: v, shown: x(v), target: "≤ 1.00×", met: (n) => n <= 1 });
    goals.push({
      goal: "image pull: registry blob GETs, kiln (direct)",
      value: crowdKiln.blobGets,
      shown: `${crowdKiln.blobGets} (${crowdDirect.blobGets})`,
      target: "one per blob",
      met: (n) => n <= (img("direct-1")?.blobGets ?? 0),
    });
  }
  return {
    title: "Issue 15 goals, this run (ratios against the anchors measured above)",
    headers: ["goal", "this run", "target", "met"],
    numeric: [false, true, true, false],
    rows: goals.map((g) => [g.goal, g.shown, g.target, Number.isFinite(g.value) ? (g.met(g.value) ? "yes" : "no") : "—"]),
    notes: ["The scheduler goals (registrations per second, RSS at 10,000 hosts) are reported by the scheduler phase."],
  };
}
