/**
 * `kiln puller apply`: the Kubernetes Image Puller's configuration, in any of its forms
 * (its environment variables; or a file with its ConfigMap, an OpenShift Template of it,
 * the operator's KubernetesImagePuller, or the CheCluster patch), becomes kiln pull
 * schedules of the same names, created or updated through the Open API; the manager keeps
 * the images warm on the selected peers through the swarm from then on.
 */
import { readFile } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import { OpenApiClient } from "../api/manager-client.js";
import type { PullScheduleView } from "../api/puller.js";
import { collect } from "./options.js";
import { registerPullerManageCommands } from "./puller-manage.js";
import { addManagerOption, fail, type ManagerFlags, managerTimeouts } from "./token.js";
import { IMAGE_PULLER_KEYS, type ImagePullerVars } from "./puller-config.js";
import { type ImagePullerFile, planSchedules, readImagePullerFile } from "./puller-forms.js";

interface PullerFlags extends ManagerFlags {
  token?: string;
  file?: string;
  configMap?: string;
  param: Record<string, string>;
  username?: string;
  password?: string;
  insecureRegistry: string[];
  json?: boolean;
}

/** `NAME=VALUE` (oc process -p) into the map so far. */
function parseParam(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`a parameter is NAME=VALUE, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

async function readSource(file: string): Promise<string> {
  if (file !== "-") return readFile(file, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The configurations of the file (`-` = stdin), or the Image Puller's keys from the environment. */
async function readConfigs(file: string | undefined, params: Record<string, string>): Promise<ImagePullerFile> {
  if (!file) {
    if (Object.keys(params).length) throw new Error("--param fills a Template's parameters: give the Template with -f");
    const vars: ImagePullerVars = Object.fromEntries(IMAGE_PULLER_KEYS.map((k) => [k, process.env[k]]));
    return { configs: [{ form: "the environment (IMAGES, ...)", vars, options: {}, ignored: [] }], ignored: [] };
  }
  try {
    return readImagePullerFile(await readSource(file), params);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

function summary(s: PullScheduleView): string {
  const selector = Object.entries(s.node_selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return `pull schedule ${s.id} "${s.name}": ${s.images.length} image(s) every ${s.interval_hours ?? s.cron} h on ${selector || "every peer"}; next run ${s.next_run_at ?? "—"}\n`;
}

export function registerPullerCommand(program: Command): void {
  const puller = program.command("puller").description("keep image lists warm on selected peers (the Kubernetes Image Puller's job, through the swarm)");
  registerPullerManageCommands(puller);
  addManagerOption(puller.command("apply").description("create or update the pull schedules an Image Puller configuration describes"))
    .option("--token <pat>", "personal access token with scope job (env KILN_TOKEN)")
    .option(
      "-f, --file <file>",
      "the Image Puller's configuration, one or more YAML documents (- = stdin): its ConfigMap, an OpenShift Template of it, " +
        "a KubernetesImagePuller (che.eclipse.org/v1alpha1) or the CheCluster patch; default: its keys as environment variables",
    )
    .option("--config-map <file>", "the same as --file")
    .option("-p, --param <NAME=VALUE>", "a Template parameter, as oc process -p (repeatable)", parseParam, {})
    .option("--username <user>", "registry username for the images")
    .option("--password <password>", "registry password (env KILN_REGISTRY_PASSWORD)")
    .option("--insecure-registry <host:port>", "a registry spoken to over plain HTTP (repeatable)", collect, [])
    .option("--json", "print the schedules as JSON")
    .action(async (f: PullerFlags) => {
      try {
        const token = f.token ?? process.env.KILN_TOKEN;
        if (!token) throw new Error("give a personal access token with --token or KILN_TOKEN (kiln token create --scope job)");
        const { schedules, notes } = planSchedules(await readConfigs(f.file ?? f.configMap, f.param));
        for (const line of notes) process.stderr.write(`kiln puller: ${line}\n`);
        const password = f.password ?? process.env.KILN_REGISTRY_PASSWORD;
        const client = new OpenApiClient(f.manager, token, managerTimeouts(f));
        const existing = await client.listPullSchedules();
        const saved: PullScheduleView[] = [];
        for (const body of schedules) {
          const full = {
            ...body,
            ...(f.username ? { username: f.username } : {}),
            ...(password ? { password } : {}),
            ...(f.insecureRegistry.length ? { insecure_registries: f.insecureRegistry } : {}),
          };
          const same = existing.find((s) => s.name === body.name);
          const view = same ? await client.updatePullSchedule(same.id, full) : await client.createPullSchedule(full);
          saved.push(view);
          if (!f.json) process.stdout.write(`${same ? "updated" : "created"} ${summary(view)}`);
        }
        if (f.json) process.stdout.write(`${JSON.stringify(saved.length === 1 ? saved[0] : saved, null, 2)}\n`);
      } catch (err) {
        fail("puller apply", err);
      }
    });
}
