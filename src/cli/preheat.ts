/**
 * `kiln preheat image|file URL...`: creates a preheat job through the Open API,
 * shows its progress until it ends, and exits non-zero on FAILURE with the log.
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import cliProgress from "cli-progress";
import { OpenApiClient } from "../api/manager-client.js";
import { PreheatScope } from "../api/scheduler.js";
import type { JobView } from "../api/jobs.js";
import { validateExplicitPieceLength } from "../common/piece.js";
import { DEFAULT_PREHEAT_FILTER } from "../common/defaults.js";
import { addManagerOption, fail, type ManagerFlags, managerTimeouts } from "./token.js";
import { collect, parseBytes, parseDuration, parsePositiveInt } from "./options.js";
import { hostLabel } from "../common/host-label.js";
import { LogCursor, percentDone, progressSummary } from "./job-progress.js";

interface PreheatFlags extends ManagerFlags {
  token?: string;
  username?: string;
  password?: string;
  platform?: string;
  tag?: string;
  application?: string;
  filter: string;
  pieceLength?: number;
  scope?: string;
  ip: string[];
  count?: number;
  percentage?: number;
  cluster: number[];
  header: string[];
  timeout?: number;
  wait: boolean;
  progress: boolean;
  json?: boolean;
  pollMs: number;
}

function parseHeader(line: string, previous: string[]): string[] {
  if (!/^[^:\s]+:\s?.*$/.test(line)) throw new InvalidArgumentError(`header must look like 'Name: value', got ${JSON.stringify(line)}`);
  return collect(line, previous);
}

function parseScope(value: string): string {
  if (!PreheatScope.safeParse(value).success) throw new InvalidArgumentError(`scope must be one of ${PreheatScope.options.join(", ")}`);
  return value;
}

export function parseClusterId(value: string, previous: number[]): number[] {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("cluster ids are positive integers");
  return [...previous, n];
}

/** The Open API request body, as a Dragonfly client would write it. */
export function preheatBody(type: "image" | "file", urls: string[], f: PreheatFlags): Record<string, unknown> {
  const headers = Object.fromEntries(
    f.header.map((h) => {
      const i = h.indexOf(":");
      return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
    }),
  );
  const [url, ...more] = urls;
  const args: Record<string, unknown> = { type, url, filteredQueryParams: f.filter };
  if (more.length) args.urls = more;
  if (f.header.length) args.headers = headers;
  if (f.username) args.username = f.username;
  const password = type === "image" ? (f.password ?? process.env.KILN_REGISTRY_PASSWORD) : undefined;
  if (password) args.password = password;
  if (f.platform) args.platform = f.platform;
  if (f.tag) args.tag = f.tag;
  if (f.application) args.application = f.application;
  if (f.pieceLength !== undefined) args.pieceLength = f.pieceLength;
  if (f.scope) args.scope = f.scope;
  if (f.ip.length) args.ips = f.ip;
  if (f.count !== undefined) args.count = f.count;
  if (f.percentage !== undefined) args.percentage = f.percentage;
  if (f.timeout !== undefined) args.timeout = Math.ceil(f.timeout / 1000);
  return { type: "preheat", args, ...(f.cluster.length ? { scheduler_cluster_ids: f.cluster } : {}) };
}

/** Polls the job until it ends: a progress bar on a terminal (a line per change otherwise), and each log line as it comes. */
export async function follow(client: OpenApiClient, job: JobView, f: { progress: boolean; pollMs: number }, what = "preheat"): Promise<JobView> {
  const tty = f.progress && process.stderr.isTTY;
  const bars = tty
    ? new cliProgress.MultiBar(
        { format: `${what} |{bar}| {percentage}% | {summary}`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bar = bars?.create(100, 0, { summary: "resolving" });
  const cursor = new LogCursor();
  let last = "";
  try {
    for (;;) {
      if (f.progress) {
        for (const line of cursor.next(job)) {
          if (bars) bars.log(`${line}\n`);
          else process.stderr.write(`  ${line}\n`);
        }
        const summary = progressSummary(job);
        if (bar) bar.update(percentDone(job), { summary });
        else if (summary !== last) process.stderr.write(`job ${job.id}: ${job.state}, ${summary}\n`);
        last = summary;
      }
      if (job.state !== "PENDING") return job;
      await new Promise((r) => setTimeout(r, f.pollMs));
      job = await client.getJob(job.id);
    }
  } finally {
    bars?.stop();
  }
}

function report(job: JobView, json: boolean | undefined, logShown = false): void {
  if (json) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  const r = job.result;
  if (job.state === "SUCCESS") {
    if (!json) {
      const peers = new Set(r?.success_tasks.map((t) => hostLabel(t)));
      process.stdout.write(`SUCCESS: job ${job.id} preheated ${r?.urls.length ?? 0} URL(s) on ${[...peers].join(", ") || "no peer"}\n`);
    }
    return;
  }
  process.stderr.write(`FAILURE: job ${job.id}: ${r?.error ?? "no reason recorded"}\n`);
  if (!logShown) for (const line of r?.log ?? []) process.stderr.write(`  ${line}\n`);
  process.exitCode = 1;
}

/** The flags a task ID is computed from besides the URL (preheat and the task commands alike). */
export function addTaskIdOptions(cmd: Command): Command {
  return cmd
    .option("--tag <tag>", "task tag (part of the task ID)")
    .option("--application <name>", "application (part of the task ID)")
    .option("--filter <params>", "query parameters left out of the task ID, '&'-separated", DEFAULT_PREHEAT_FILTER)
    .option("--piece-length <bytes>", "explicit piece length (part of the task ID)", (v) => {
      try {
        return validateExplicitPieceLength(parseBytes(v));
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    });
}

function addPreheatCommand(parent: Command, type: "image" | "file", description: string): void {
  const cmd = addManagerOption(
    parent
      .command(type)
      .description(description)
      .argument("<url...>", type === "image" ? "https://<registry>/v2/<repo>/manifests/<tag>" : "file URL(s)"),
  ).option("--token <pat>", "personal access token with scope job (env KILN_TOKEN)");
  // Registry credentials and the platform mean something for an image only: kiln preheat file --help does not list them.
  if (type === "image") {
    cmd
      .option("--username <user>", "registry username")
      .option("--password <password>", "registry password (env KILN_REGISTRY_PASSWORD)")
      .option("--platform <os/arch>", "platform to pick from a multi-arch image (default linux/amd64)");
  }
  addTaskIdOptions(cmd)
    .option("--scope <scope>", "single_seed_peer | all_seed_peers | all_peers", parseScope)
    .option("--ip <ip>", "only these hosts (repeatable)", collect, [])
    .option("--count <n>", "at most this many hosts", parsePositiveInt)
    .option("--percentage <n>", "this percentage of the hosts", parsePositiveInt)
    .option("--cluster <id>", "scheduler cluster id (repeatable; default all)", parseClusterId, [])
    .option("-H, --header <header>", "origin request header 'Name: value' (repeatable)", parseHeader, [])
    .option("--timeout <duration>", "job timeout, e.g. 10m", parseDuration)
    .option("--no-wait", "print the job and return at once")
    .option("--no-progress", "no progress output")
    .option("--json", "print the job as JSON")
    .option("--poll-ms <ms>", "how often to ask the manager", parsePositiveInt, 1000)
    .action(async (urls: string[], f: PreheatFlags) => {
      try {
        const token = f.token ?? process.env.KILN_TOKEN;
        if (!token) throw new Error("give a personal access token with --token or KILN_TOKEN (kiln token create --scope job)");
        const client = new OpenApiClient(f.manager, token, managerTimeouts(f));
        const job = await client.createJob(preheatBody(type, urls, f));
        if (!f.wait) {
          process.stdout.write(f.json ? `${JSON.stringify(job, null, 2)}\n` : `job ${job.id} created (${job.task_id})\n`);
          return;
        }
        if (f.progress && !f.json) process.stderr.write(`job ${job.id} created (${job.task_id})\n`);
        report(await follow(client, job, f), f.json, f.progress);
      } catch (err) {
        fail(`preheat ${type}`, err);
      }
    });
}

export function registerPreheatCommand(program: Command): void {
  const preheat = program.command("preheat").description("preheat images or files into the P2P network through the manager's Open API");
  addPreheatCommand(preheat, "image", "preheat an image: its config and every layer of the chosen platform");
  addPreheatCommand(preheat, "file", "preheat one or more files");
}
