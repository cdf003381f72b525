/** A scheduler, one seed peer and peers as separate processes, stopped with the bench whatever happens. */
import { TestCluster, type PeerHandle } from "../test/helpers/cluster.js";
import { adopt, onCleanup, trackTempDir } from "./procs.js";

export interface Cluster {
  cluster: TestCluster;
  seed: PeerHandle;
  peers: PeerHandle[];
  stop(): Promise<void>;
}

export async function startCluster(peerNames: string[], peerArgs: string[] = []): Promise<Cluster> {
  const cluster = await TestCluster.start({ peerArgs });
  trackTempDir(cluster.dir);
  adopt(cluster.scheduler.proc);
  const unregister = onCleanup(() => cluster.stop());
  try {
    const seed = await cluster.addPeer("seed-1", { seed: true });
    adopt(seed.proc.proc);
    const peers: PeerHandle[] = [];
    // A few at a time: on a 2-core machine, eight Node processes booting at once can miss the ready timeout.
    for (let i = 0; i < peerNames.length; i += 4) {
      const batch = await Promise.all(peerNames.slice(i, i + 4).map((n) => cluster.addPeer(n)));
      for (const p of batch) adopt(p.proc.proc);
      peers.push(...batch);
    }
    return {
      cluster,
      seed,
      peers,
      stop: async () => {
        unregister();
        await cluster.stop();
      },
    };
  } catch (err) {
    unregister();
    await cluster.stop().catch(() => undefined);
    throw err;
  }
}
