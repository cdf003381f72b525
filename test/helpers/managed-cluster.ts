/**
 * `kiln manager` (SQLite under `dir`) with a scheduler and a seed peer registered to it,
 * and a personal access token for each scope: the set-up of the suites (and benches)
 * that drive jobs and schedules through the Open API.
 */
import { join } from "node:path";
import { TestCluster, type PeerHandle } from "./cluster.js";
import { runKiln, spawnKiln, type KilnProcess } from "./proc.js";

export interface ManagedCluster {
  manager: KilnProcess;
  managerUrl: string;
  cluster: TestCluster;
  seed: PeerHandle;
  /** Scope `job`. */
  token: string;
  /** Scope `cluster`. */
  clusterToken: string;
  stop(): Promise<void>;
}

export async function startManagedCluster(dir: string, opts: { rootPassword: string; schedulerArgs?: string[] }): Promise<ManagedCluster> {
  const manager = await spawnKiln(
    ["manager", "--host", "127.0.0.1", "--port", "0", "--database-url", `sqlite:${join(dir, "manager.db")}`, "--job-poll-ms", "100", "--keepalive-ms", "500"],
    { env: { KILN_ROOT_PASSWORD: opts.rootPassword } },
  );
  const managerUrl = `http://127.0.0.1:${manager.ready.port as number}`;
  let cluster: TestCluster | undefined;
  try {
    cluster = await TestCluster.start({ schedulerArgs: ["--manager", managerUrl, "--advertise-ip", "127.0.0.1", ...(opts.schedulerArgs ?? [])] });
    const seed = await cluster.addPeer("seed-1", { seed: true, args: ["--manager", managerUrl] });
    const tokens: string[] = [];
    for (const scope of ["job", "cluster"]) {
      const created = await runKiln(["token", "create", "--scope", scope, "--manager", managerUrl], { env: { KILN_MANAGER_PASSWORD: opts.rootPassword } });
      if (created.code !== 0) throw new Error(`kiln token create --scope ${scope}: ${created.stderr}`);
      tokens.push(created.stdout.trim());
    }
    const c = cluster;
    return {
      manager,
      managerUrl,
      cluster: c,
      seed,
      token: tokens[0]!,
      clusterToken: tokens[1]!,
      async stop() {
        await c.stop();
        await manager.kill();
      },
    };
  } catch (err) {
    await cluster?.stop();
    await manager.kill();
    throw err;
  }
}
