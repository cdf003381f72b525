/** First start: the root user and the default cluster. */
import type { Store } from "./store.js";
import { MANAGER } from "./defaults.js";
import { hashPassword, randomPassword } from "./auth/secrets.js";

export interface BootstrapResult {
  /** Set only when root was created now with a generated password (to be printed once). */
  generatedRootPassword?: string;
  rootCreated: boolean;
  defaultClusterId: number;
}

export async function bootstrap(store: Store, opts: { rootPassword?: string } = {}): Promise<BootstrapResult> {
  let generatedRootPassword: string | undefined;
  let rootCreated = false;
  if (!(await store.users.byName(MANAGER.rootUser))) {
    const chosen = opts.rootPassword;
    const password = chosen ?? randomPassword();
    try {
      // A password the operator chose is kept; a generated one must be changed at first sign-in.
      await store.users.create({ name: MANAGER.rootUser, passwordHash: await hashPassword(password), mustChangePassword: chosen === undefined, role: "root" });
      rootCreated = true;
      if (chosen === undefined) generatedRootPassword = password;
    } catch (err) {
      if (!(await store.users.byName(MANAGER.rootUser))) throw err; // another replica created it first otherwise
    }
  }
  let cluster = await store.clusters.defaultCluster();
  if (!cluster) {
    try {
      await store.clusters.create({ name: MANAGER.defaultClusterName, isDefault: true });
    } catch (err) {
      if (!(await store.clusters.byName(MANAGER.defaultClusterName))) throw err;
    }
    cluster = await store.clusters.defaultCluster();
  }
  return { generatedRootPassword, rootCreated, defaultClusterId: cluster!.id };
}
