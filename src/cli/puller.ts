/**
 * `kiln puller apply`: the Kubernetes Image Puller's configuration (its environment
 * variables, or its ConfigMap file) becomes a kiln pull schedule of the same name,
 * created or updated through the Open API; the manager keeps the images warm on the
 * selected peers through the swarm from then on.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { OpenApiClient } from "../api/manager-client.js";
import type { PullScheduleView } from "../api/puller.js";
import { collect } from "./options.js";
import { addManagerOption, fail } from "./token.js";
import { IMAGE_PULLER_KEYS, scheduleFromImagePuller } from "./image-puller-config.js";

interface PullerFlags {
  manager: string;
  token?: string;
  configMap?: string;
  username?: string;
  password?: string;
  insecureRegistry: string[];
  json?: boolean;
}

/** The Image Puller's keys from a ConfigMap manifest (`data:`), else from the environment. */
async function readConfig(file: string | undefined): Promise<Record<string, string | undefined>> {
  if (!file) return Object.fromEntries(IMAGE_PULLER_KEYS.map((k) => [k, process.env[k]]));
  const doc = parseYaml(await readFile(file, "utf8")) as { kind?: string; data?: Record<string, unknown> } | null;
  if (!doc?.data || typeof doc.data !== "object") throw new Error(`${file}: not a ConfigMap with a data: section`);
  return Object.fromEntries(IMAGE_PULLER_KEYS.map((k) => [k, doc.data![k] === undefined ? undefined : String(doc.data![k])]));
}

function summary(s: PullScheduleView): string {
  const selector = Object.entries(s.node_selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return `pull schedule ${s.id} "${s.name}": ${s.images.length} image(s) every ${s.interval_hours ?? s.cron} h on ${selector || "every peer"}; next run ${s.next_run_at ?? "—"}\n`;
}

export function registerPullerCommand(program: Command): void {
  const puller = program.command("puller").description("keep image lists warm on selected peers (the Kubernetes Image Puller's job, through the swarm)");
  addManagerOption(puller.command("apply").description("create or update the pull schedule an Image Puller configuration describes"))
    .option("--token <pat>", "personal access token with scope job (env KILN_TOKEN)")
    .option("--config-map <file>", "the Image Puller's ConfigMap manifest (YAML); default: its keys as environment variables")
    .option("--username <user>", "registry username for the images")
    .option("--password <password>", "registry password (env KILN_REGISTRY_PASSWORD)")
    .option("--insecure-registry <host:port>", "a registry spoken to over plain HTTP (repeatable)", collect, [])
    .option("--json", "print the schedule as JSON")
    .action(async (f: PullerFlags) => {
      try {
        const token = f.token ?? process.env.KILN_TOKEN;
        if (!token) throw new Error("give a personal access token with --token or KILN_TOKEN (kiln token create --scope job)");
        const { body, ignored } = scheduleFromImagePuller(await readConfig(f.configMap));
        for (const line of ignored) process.stderr.write(`kiln puller: ignored ${line}\n`);
        const password = f.password ?? process.env.KILN_REGISTRY_PASSWORD;
        const full = {
          ...body,
          ...(f.username ? { username: f.username } : {}),
          ...(password ? { password } : {}),
          ...(f.insecureRegistry.length ? { insecure_registries: f.insecureRegistry } : {}),
        };
        const client = new OpenApiClient(f.manager, token);
        const existing = (await client.listPullSchedules()).find((s) => s.name === body.name);
        const saved = existing ? await client.updatePullSchedule(existing.id, full) : await client.createPullSchedule(full);
        process.stdout.write(f.json ? `${JSON.stringify(saved, null, 2)}\n` : `${existing ? "updated" : "created"} ${summary(saved)}`);
      } catch (err) {
        fail("puller apply", err);
      }
    });
}
