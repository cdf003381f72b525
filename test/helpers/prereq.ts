/** What a suite needs from the machine: missing pieces skip it locally and fail it under CI=true. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * `commands`: executables that must be on PATH (Debian package in parentheses in
 * the message); `problems`: other unmet conditions the caller found. Resolves to
 * a skip reason, or undefined when all is there; throws under CI.
 */
export async function prerequisitesMissing(suite: string, commands: Record<string, string>, problems: string[] = []): Promise<string | undefined> {
  const all = [...problems];
  for (const [command, pkg] of Object.entries(commands)) {
    try {
      await run("sh", ["-c", `command -v ${command}`]);
    } catch {
      all.push(`missing ${command} (apt-get install ${pkg})`);
    }
  }
  if (!all.length) return undefined;
  if (process.env.CI === "true") throw new Error(`${suite} cannot run under CI: ${all.join("; ")}`);
  return all.join("; ");
}
