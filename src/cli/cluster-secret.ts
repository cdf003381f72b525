/** KILN_CLUSTER_SECRET for the CLI: from the environment, or (kiln up) a generated one kept in the data dir. */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { StartupError } from "./ports.js";

/**
 * What each daemon needs from the environment with `--require-secret` (the Kubernetes
 * manifests set it): an installation whose Secret was left empty stops at start instead
 * of running open (no cluster secret), with a per-replica key or a printed password, or
 * (a variable present but empty) on a database of its own.
 */
export const REQUIRED_SECRETS = {
  manager: { required: ["KILN_CLUSTER_SECRET", "KILN_SECRET_KEY", "KILN_ROOT_PASSWORD"], ifPresent: ["KILN_DATABASE_URL", "KILN_REDIS_URL"] },
  scheduler: { required: ["KILN_CLUSTER_SECRET"], ifPresent: [] },
  peer: { required: ["KILN_CLUSTER_SECRET"], ifPresent: [] },
} as const satisfies Record<string, { required: readonly string[]; ifPresent: readonly string[] }>;

export type SecretNeedingDaemon = keyof typeof REQUIRED_SECRETS;

/** The `--require-secret` option of a daemon, for commander's `.option(...)`. */
export function requireSecretOption(daemon: SecretNeedingDaemon): [flags: string, description: string] {
  const { required, ifPresent } = REQUIRED_SECRETS[daemon];
  const alsoPresent = ifPresent.length ? `, or ${ifPresent.join(", ")} is set but empty` : "";
  return ["--require-secret", `refuse to start when ${required.join(", ")} is unset or empty${alsoPresent} (the Kubernetes manifests set it)`];
}

/** Throws one line naming every secret of the daemon that is missing or blank. */
export function assertSecretsSet(daemon: SecretNeedingDaemon, env: NodeJS.ProcessEnv = process.env): void {
  const { required, ifPresent } = REQUIRED_SECRETS[daemon];
  const blank = (name: string) => !env[name]?.trim();
  const missing = [...required.filter(blank), ...ifPresent.filter((name) => name in env && blank(name))];
  if (!missing.length) return;
  throw new StartupError(
    `--require-secret: ${missing.join(", ")} unset or empty: set ${missing.length > 1 ? "them" : "it"} in the installation's Secret (a random secret: openssl rand -base64 32)`,
  );
}

export function clusterSecretFromEnv(): string | undefined {
  return process.env.KILN_CLUSTER_SECRET || undefined;
}

/** The environment's secret, else the one in `file`, else a new one written there (mode 0600). */
export async function loadOrCreateClusterSecret(file: string): Promise<string> {
  const fromEnv = clusterSecretFromEnv();
  if (fromEnv) return fromEnv;
  try {
    const kept = (await readFile(file, "utf8")).trim();
    if (kept) return kept;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secret = randomBytes(32).toString("base64url");
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
