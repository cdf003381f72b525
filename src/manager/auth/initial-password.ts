/**
 * The generated root password, kept (mode 0600) in the manager's data directory until
 * it is changed, so a start that fails after creating root (or a lost terminal) does
 * not lose the only copy.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export function initialPasswordFile(dataDir: string): string {
  return join(dataDir, "initial-root-password");
}

export async function keepInitialPassword(file: string, password: string): Promise<true> {
  await mkdir(join(file, ".."), { recursive: true, mode: 0o700 });
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return true;
}

/** Called once root's password no longer has to be changed: the file would only mislead. */
export async function forgetInitialPassword(file: string): Promise<void> {
  await rm(file, { force: true });
}
