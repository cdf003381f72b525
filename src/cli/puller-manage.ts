/**
 * `kiln puller list | get | run | delete`: the pull schedules through the Open API. A
 * schedule is named by its id or its name; `get` prints the image × node matrix of the
 * last run as a table, with each failure's reason under it.
 */
import type { Command } from "commander";
import { OpenApiClient } from "../api/manager-client.js";
import type { PullScheduleView } from "../api/puller.js";
import { hostLabel } from "../common/host-label.js";
import { formatTable } from "./format.js";
import { addManagerOption, fail, type ManagerFlags, managerTimeouts } from "./token.js";

interface Flags extends ManagerFlags {
  token?: string;
  json?: boolean;
}

const CELL = { warm: "warm", pulling: "pulling", failed: "FAILED", not_selected: "-" } as const;

function every(s: PullScheduleView): string {
  return s.cron ? `cron ${s.cron}` : `every ${s.interval_hours} h`;
}

export function scheduleRows(list: PullScheduleView[]): string {
  return formatTable(
    ["ID", "NAME", "IMAGES", "WHEN", "NODES", "STATE", "LAST RUN", "NEXT RUN"],
    list.map((s) => [
      String(s.id),
      s.name,
      String(s.images.length),
      every(s),
      Object.entries(s.node_selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(",") || "every peer",
      s.enabled ? s.state : "disabled",
      s.last_run_at ?? "never",
      s.next_run_at ?? "-",
    ]),
  );
}

/** The schedule, then one row per image and one column per node of its last run, then why each failed cell failed. */
export function scheduleDetail(s: PullScheduleView): string {
  const out = [
    `pull schedule ${s.id} "${s.name}": ${s.images.length} image(s), ${every(s)}, ${s.enabled ? s.state : "disabled"}; last run ${s.last_run_at ?? "never"}, next ${s.next_run_at ?? "-"}\n`,
  ];
  const st = s.status;
  if (!st) return `${out[0]}no run yet: kiln puller run ${s.id}\n`;
  const nodes = st.nodes;
  const cell = (image: string, hostId: string) => st.cells.find((c) => c.image === image && c.host_id === hostId);
  out.push(
    formatTable(
      ["IMAGE", "DIGEST", ...nodes.map((n) => hostLabel(n))],
      st.images.map((i) => [
        i.image,
        i.digest ? i.digest.slice(0, 19) : "unresolved",
        ...nodes.map((n) => CELL[cell(i.name, n.host_id)?.state ?? "not_selected"]),
      ]),
    ),
  );
  const reasons = [
    ...st.images.filter((i) => i.error).map((i) => `${i.image}: ${i.error}`),
    ...st.cells
      .filter((c) => c.state === "failed" && c.reason)
      .map((c) => {
        const n = nodes.find((x) => x.host_id === c.host_id);
        const image = st.images.find((i) => i.name === c.image)?.image ?? c.image;
        return `${image} on ${n ? hostLabel(n) : c.host_id}: ${c.reason}`;
      }),
  ];
  if (reasons.length) out.push(`failures:\n${reasons.map((r) => `  ${r}\n`).join("")}`);
  return out.join("");
}

async function resolve(client: OpenApiClient, ref: string): Promise<PullScheduleView> {
  if (/^\d+$/.test(ref)) return client.getPullSchedule(Number(ref));
  const found = (await client.listPullSchedules()).find((s) => s.name === ref);
  if (!found) throw new Error(`no pull schedule is named ${JSON.stringify(ref)} (kiln puller list shows them)`);
  return found;
}

function withClient(cmd: Command, what: string, run: (client: OpenApiClient, f: Flags, ref?: string) => Promise<void>): void {
  addManagerOption(cmd)
    .option("--token <pat>", "personal access token with scope job (env KILN_TOKEN)")
    .option("--json", "print JSON")
    .action(async (...args: unknown[]) => {
      const ref = typeof args[0] === "string" ? args[0] : undefined;
      const f = (ref === undefined ? args[0] : args[1]) as Flags;
      try {
        const token = f.token ?? process.env.KILN_TOKEN;
        if (!token) throw new Error("give a personal access token with --token or KILN_TOKEN (kiln token create --scope job)");
        await run(new OpenApiClient(f.manager, token, managerTimeouts(f)), f, ref);
      } catch (err) {
        fail(`puller ${what}`, err);
      }
    });
}

const json = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

export function registerPullerManageCommands(puller: Command): void {
  withClient(puller.command("list").description("list the pull schedules"), "list", async (client, f) => {
    const list = await client.listPullSchedules();
    if (f.json) return json(list);
    process.stdout.write(list.length ? scheduleRows(list) : "no pull schedules (kiln puller apply creates them)\n");
  });
  withClient(
    puller.command("get").description("one pull schedule and its image × node matrix").argument("<schedule>", "id or name"),
    "get",
    async (client, f, ref) => {
      const s = await resolve(client, ref!);
      if (f.json) return json(s);
      process.stdout.write(scheduleDetail(s));
    },
  );
  withClient(puller.command("run").description("run a pull schedule now").argument("<schedule>", "id or name"), "run", async (client, f, ref) => {
    const s = await client.runPullSchedule((await resolve(client, ref!)).id);
    if (f.json) return json(s);
    process.stdout.write(`pull schedule ${s.id} "${s.name}" is ${s.state}; kiln puller get ${s.id} shows the matrix\n`);
  });
  withClient(puller.command("delete").description("delete a pull schedule").argument("<schedule>", "id or name"), "delete", async (client, _f, ref) => {
    const s = await resolve(client, ref!);
    await client.deletePullSchedule(s.id);
    process.stdout.write(`deleted pull schedule ${s.id} "${s.name}"\n`);
  });
}
