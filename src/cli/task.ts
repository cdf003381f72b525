/**
 * `kiln task get|delete URL|TASK_ID` and `kiln image distribution URL`: the task
 * management jobs through the Open API, printed as a table (or the job as JSON).
 * A job that ends FAILURE exits non-zero with its log.
 */
import type { Command } from "commander";
import { OpenApiClient } from "../api/manager-client.js";
import type { JobView } from "../api/jobs.js";
import { isTaskId } from "../common/task-id.js";
import { addManagerOption, fail, type ManagerFlags, managerTimeouts } from "./token.js";
import { parseDuration, parsePositiveInt } from "./options.js";
import { addTaskIdOptions, follow, parseClusterId } from "./preheat.js";
import { formatBytes, formatTable } from "./format.js";
import { hostAddress, hostLabel } from "../common/host-label.js";

interface TaskFlags extends ManagerFlags {
  token?: string;
  tag?: string;
  application?: string;
  filter: string;
  pieceLength?: number;
  cluster: number[];
  timeout?: number;
  username?: string;
  password?: string;
  platform?: string;
  json?: boolean;
  progress: boolean;
  pollMs: number;
}

function addJobOptions(cmd: Command): Command {
  return addTaskIdOptions(addManagerOption(cmd).option("--token <pat>", "personal access token with scope job (env KILN_TOKEN)"))
    .option("--cluster <id>", "scheduler cluster id (repeatable; default all)", parseClusterId, [])
    .option("--timeout <duration>", "job timeout, e.g. 5m", parseDuration)
    .option("--no-progress", "no progress output")
    .option("--json", "print the job as JSON")
    .option("--poll-ms <ms>", "how often to ask the manager", parsePositiveInt, 500);
}

/** The Open API body: a task ID as given, anything else as the URL the task ID is computed from. */
export function taskJobBody(type: string, target: string, f: TaskFlags): Record<string, unknown> {
  const args: Record<string, unknown> = isTaskId(target) ? { task_id: target } : { url: target, filtered_query_params: f.filter };
  if (f.tag) args.tag = f.tag;
  if (f.application) args.application = f.application;
  if (f.pieceLength !== undefined) args.piece_length = f.pieceLength;
  if (f.timeout !== undefined) args.timeout = Math.ceil(f.timeout / 1000);
  if (f.username) args.username = f.username;
  const password = f.password ?? process.env.KILN_REGISTRY_PASSWORD;
  if (password && type === "get_image_distribution") args.password = password;
  if (f.platform) args.platform = f.platform;
  return { type, args, ...(f.cluster.length ? { scheduler_cluster_ids: f.cluster } : {}) };
}

async function runJob(type: string, target: string, f: TaskFlags, print: (job: JobView) => string): Promise<void> {
  const token = f.token ?? process.env.KILN_TOKEN;
  if (!token) throw new Error("give a personal access token with --token or KILN_TOKEN (kiln token create --scope job)");
  const client = new OpenApiClient(f.manager, token, managerTimeouts(f));
  const job = await follow(client, await client.createJob(taskJobBody(type, target, f)), f, type);
  if (f.json) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  else process.stdout.write(print(job));
  if (job.state !== "SUCCESS") {
    process.stderr.write(`FAILURE: job ${job.id}: ${job.result?.error ?? "no reason recorded"}\n`);
    for (const line of job.result?.log ?? []) process.stderr.write(`  ${line}\n`);
    process.exitCode = 1;
  }
}

function holdersTable(job: JobView): string {
  const peers = job.result?.peers ?? [];
  if (peers.length === 0) return "no peer holds this task\n";
  return formatTable(
    ["HOSTNAME", "ADDRESS", "TYPE", "STATE", "PIECES", "SIZE", "CLUSTER", "CREATED", "LAST USED"],
    peers.map((p) => [
      p.hostname,
      hostAddress(p),
      p.host_type === "super" ? "seed" : "peer",
      p.state,
      `${p.finished_pieces}/${p.total_pieces ?? "?"}`,
      p.content_length === null ? "?" : formatBytes(p.content_length),
      String(p.scheduler_cluster_id),
      p.created_at,
      p.updated_at,
    ]),
  );
}

function outcomesTable(job: JobView): string {
  const rows = [
    ...(job.result?.success_tasks ?? []).map((t) => ({ t, ok: "deleted" })),
    ...(job.result?.failure_tasks ?? []).map((t) => ({ t, ok: "FAILED" })),
  ];
  if (rows.length === 0) return "no peer held this task\n";
  return formatTable(
    ["HOSTNAME", "ADDRESS", "TYPE", "RESULT", "DETAIL"],
    rows.map(({ t, ok }) => [t.hostname || "—", hostAddress(t), t.host_type === "super" ? "seed" : t.host_type ? "peer" : "—", ok, t.description]),
  );
}

function distributionTable(job: JobView): string {
  const image = job.result?.image;
  if (!image) return "";
  const header = `${image.manifest_digest}${image.platform ? ` (${image.platform})` : ""}: ${image.layers.length} layer(s)\n`;
  const rows = image.layers.flatMap((l) => {
    const holders = image.peers.filter((p) => p.layers.some((x) => x.digest === l.digest && x.state === "finished"));
    return [
      [
        l.digest.slice(0, 19),
        formatBytes(l.size),
        String(holders.length),
        holders
          .map((h) => hostLabel(h))
          .sort()
          .join(", ") || "—",
      ],
    ];
  });
  return header + formatTable(["LAYER", "SIZE", "WARM NODES", "HOSTS"], rows);
}

export function registerTaskCommand(program: Command): void {
  const task = program.command("task").description("find or delete a task (a file or blob) on every peer, through the manager's Open API");
  addJobOptions(
    task.command("get").description("list the peers that hold a task or part of it").argument("<url|task-id>", "the URL as pulled, or a task ID"),
  ).action(async (target: string, f: TaskFlags) => {
    try {
      await runJob("get_task", target, f, holdersTable);
    } catch (err) {
      fail("task get", err);
    }
  });
  addJobOptions(
    task
      .command("delete")
      .description("make every peer and seed peer drop a task (content and metadata)")
      .argument("<url|task-id>", "the URL as pulled, or a task ID"),
  ).action(async (target: string, f: TaskFlags) => {
    try {
      await runJob("delete_task", target, f, outcomesTable);
    } catch (err) {
      fail("task delete", err);
    }
  });
}

export function registerImageCommand(program: Command): void {
  const image = program.command("image").description("images across the cluster");
  addJobOptions(
    image
      .command("distribution")
      .description("which nodes hold each layer of an image")
      .argument("<url>", "https://<registry>/v2/<repo>/manifests/<tag>")
      .option("--username <user>", "registry username")
      .option("--password <password>", "registry password (env KILN_REGISTRY_PASSWORD)")
      .option("--platform <os/arch>", "platform to pick from a multi-arch image (default linux/amd64)"),
  ).action(async (url: string, f: TaskFlags) => {
    try {
      await runJob("get_image_distribution", url, f, distributionTable);
    } catch (err) {
      fail("image distribution", err);
    }
  });
}
