/** A manager for tests: in-process on loopback (API suites) with helpers to sign in and mint tokens. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startManager, type ManagerConfig, type RunningManager } from "../../src/manager/index.js";
import { ConsoleClient } from "../../src/api/manager-client.js";
import { createLogger } from "../../src/common/logger.js";
import type { TokenScope } from "../../src/api/tokens.js";

export const ROOT_PASSWORD = "root-password-for-tests";

/** The managers of one test process keep their key and first password here, not in the checkout's .kiln. */
const STATE_DIR = mkdtempSync(join(tmpdir(), "kiln-test-manager-"));
process.once("exit", () => rmSync(STATE_DIR, { recursive: true, force: true }));

export async function startTestManager(databaseUrl: string, cfg: Partial<ManagerConfig> = {}): Promise<RunningManager> {
  return startManager(
    { host: "127.0.0.1", port: 0, databaseUrl, dataDir: STATE_DIR, rootPassword: ROOT_PASSWORD, jobPollMs: 100, ...cfg },
    createLogger("manager", process.env.KILN_LOG_LEVEL ?? "warn"),
  );
}

/** Signs in as root and creates a personal access token with `scopes`. */
export async function createToken(
  managerUrl: string,
  scopes: TokenScope[],
  opts: { password?: string; expired_at?: string; name?: string } = {},
): Promise<{ token: string; id: number; console: ConsoleClient }> {
  const console = new ConsoleClient(managerUrl);
  await console.signIn("root", opts.password ?? ROOT_PASSWORD);
  const t = await console.createToken({ name: opts.name ?? `test-${scopes.join("-")}`, scopes, ...(opts.expired_at ? { expired_at: opts.expired_at } : {}) });
  return { token: t.token!, id: t.id, console };
}

/** fetch with a bearer token; returns status, headers and the parsed JSON body (or null). */
export async function api(
  url: string,
  opts: { method?: string; token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; json: any }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers["content-type"] ??= "application/json";
  const res = await fetch(url, { method: opts.method ?? (body === undefined ? "GET" : "POST"), headers, body });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { __raw: text };
  }
  return { status: res.status, headers: res.headers, json };
}

/** Polls a job until it leaves PENDING. */
export async function waitForJob(managerUrl: string, token: string, id: number, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(`${managerUrl}/oapi/v1/jobs/${id}`, { token });
    if (r.status !== 200) throw new Error(`GET job ${id}: ${r.status} ${JSON.stringify(r.json)}`);
    if (r.json.state !== "PENDING") return r.json;
    if (Date.now() > deadline) throw new Error(`job ${id} still PENDING after ${timeoutMs} ms: ${JSON.stringify(r.json.result)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
