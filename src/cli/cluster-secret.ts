/** KILN_CLUSTER_SECRET for the CLI: from the environment, or (kiln up) a generated one kept in the data dir. */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

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
