/**
 * A peer's location from the labels of the Kubernetes node it runs on, read by
 * the peer DaemonSet's init step (`kiln config location`) with the pod's service
 * account. Pods cannot see their node's labels through the downward API.
 */
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { z } from "zod";
import { Labels } from "../api/peers.js";

/** region|zone, as `kiln peer --location` takes it (the scheduler prefers parents that share its prefix). */
export const DEFAULT_LOCATION_LABELS = ["topology.kubernetes.io/region", "topology.kubernetes.io/zone"];

const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

const NodeObject = z.object({ metadata: z.object({ labels: z.record(z.string(), z.string()).default({}) }) });

export interface NodeApiOptions {
  /** Default: the in-cluster API server (KUBERNETES_SERVICE_HOST/PORT). */
  apiServer?: string;
  tokenFile?: string;
  caFile?: string;
}

/** The label values joined with `|`, empty trailing levels left out. */
export function locationFromLabels(labels: Record<string, string>, keys: string[]): string {
  const values = keys.map((k) => labels[k] ?? "");
  while (values.length && !values[values.length - 1]) values.pop();
  return values.join("|");
}

/** Labels as `key=value` lines; those the inventory would refuse are named in `skipped` instead. */
export function labelLines(labels: Record<string, string>): { lines: string[]; skipped: string[] } {
  const lines: string[] = [];
  const skipped: string[] = [];
  for (const [k, v] of Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))) {
    const check = Labels.safeParse({ [k]: v });
    if (check.success) lines.push(`${k}=${v}`);
    else skipped.push(`${k}=${v}: ${check.error.issues[0]?.message ?? "invalid"}`);
  }
  return { lines, skipped };
}

/** `key=value` lines (blank lines and `#` comments ignored) → labels; throws naming the line that is wrong. */
export function parseLabelLines(text: string): Labels {
  const out: Labels = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`line ${i + 1}: not key=value: ${JSON.stringify(line)}`);
    const check = Labels.safeParse({ [line.slice(0, eq)]: line.slice(eq + 1) });
    if (!check.success) throw new Error(`line ${i + 1}: ${line}: ${check.error.issues[0]?.message ?? "invalid label"}`);
    Object.assign(out, check.data);
  }
  return out;
}

/** One call to the Kubernetes API about a node, with the pod's service account (or the given token and CA). */
async function nodeRequest(node: string, opts: NodeApiOptions, method: "GET" | "PATCH", patch?: unknown): Promise<string> {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const base = opts.apiServer ?? (host ? `https://${host.includes(":") ? `[${host}]` : host}:${process.env.KUBERNETES_SERVICE_PORT ?? "443"}` : undefined);
  if (!base) throw new Error("not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST) and no --api-server given");
  const token = (await readFile(opts.tokenFile ?? `${SERVICE_ACCOUNT}/token`, "utf8")).trim();
  const url = new URL(`/api/v1/nodes/${encodeURIComponent(node)}`, base);
  const ca = url.protocol === "https:" ? await readFile(opts.caFile ?? `${SERVICE_ACCOUNT}/ca.crt`) : undefined;
  const body = patch === undefined ? undefined : JSON.stringify(patch);
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "application/json" };
  if (body) headers["content-type"] = "application/merge-patch+json";
  return new Promise<string>((resolve, reject) => {
    const req = (url.protocol === "https:" ? https : http).request(url, { method, headers, ca, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${method} ${url.pathname}: ${res.statusCode} ${text.slice(0, 200)}`))));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 10 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

export async function nodeLabels(node: string, opts: NodeApiOptions = {}): Promise<Record<string, string>> {
  return NodeObject.parse(JSON.parse(await nodeRequest(node, opts, "GET"))).metadata.labels;
}

/** Sets (or, with null, removes) labels of a node: needs patch on nodes. */
export async function patchNodeLabels(node: string, labels: Record<string, string | null>, opts: NodeApiOptions = {}): Promise<void> {
  await nodeRequest(node, opts, "PATCH", { metadata: { labels } });
}
