/**
 * The node's report on the shared directory (nodes/<node>.json): which shared layers
 * its snapshots use. `kiln accelerate get` reads these to tell which nodes are up, and
 * `delete` to refuse while a node still uses an image's layers.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import type { NodeReport } from "../api/accelerate.js";
import { sharedLayout } from "../accelerate/layout.js";
import type { Logger } from "../common/logger.js";
import type { SnapshotStore } from "./store.js";

export const REPORT_INTERVAL_MS = 10_000;

export function buildReport(node: string, store: SnapshotStore): NodeReport {
  const users = new Map<string, NodeReport["layers"][number]["snapshots"]>();
  for (const s of store.all()) {
    let chain: ReturnType<SnapshotStore["ancestors"]>;
    try {
      chain = [s, ...store.ancestors(s)];
    } catch {
      continue;
    }
    for (const layer of chain) {
      if (!layer.sharedDir) continue;
      const list = users.get(layer.name) ?? [];
      list.push({ name: s.name, kind: s.kind });
      users.set(layer.name, list);
    }
  }
  return { node, updatedAt: new Date().toISOString(), layers: [...users].map(([chainId, snapshots]) => ({ chainId, snapshots })) };
}

export interface Reporter {
  /** Write soon (coalesces bursts of changes). */
  changed(): void;
  stop(): Promise<void>;
}

/** `onHealth`: after each write, whether this node could write its report on the shared directory (it can mount from it). */
export function startReporter(shared: string, node: string, store: () => SnapshotStore, log: Logger, onHealth?: (ok: boolean) => void): Reporter {
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();
  let failing = false;
  const write = async () => {
    const path = sharedLayout.node(shared, node);
    try {
      await mkdir(sharedLayout.nodes(shared), { recursive: true });
      await writeFile(`${path}.tmp`, JSON.stringify(buildReport(node, store())));
      await rename(`${path}.tmp`, path);
      if (failing) log.info({ event: "report-restored", path }, "node report written again");
      failing = false;
    } catch (err) {
      if (!failing) log.warn({ event: "report-failed", path, err: (err as Error).message }, "cannot write the node report on the shared directory");
      failing = true;
    }
    onHealth?.(!failing);
  };
  const schedule = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      writing = writing.then(write);
      schedule(REPORT_INTERVAL_MS);
    }, ms);
  };
  schedule(0);
  return {
    changed: () => schedule(50),
    async stop() {
      clearTimeout(timer);
      await writing;
    },
  };
}
