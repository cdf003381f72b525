/** `kiln snapshotter`: the containerd proxy snapshotter, with accelerated layers mounted from the shared directory. */
import type { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { SNAPSHOTTER } from "../common/defaults.js";
import { createLogger } from "../common/logger.js";
import { startReporter, type Reporter } from "../snapshotter/report.js";
import { serveSnapshotter } from "../snapshotter/server.js";
import { SnapshotStore } from "../snapshotter/store.js";
import { stopOnSignal } from "./signals.js";

interface SnapshotterFlags {
  root: string;
  address: string;
  shared?: string;
  nodeName: string;
}

export function registerSnapshotterCommand(program: Command): void {
  program
    .command("snapshotter")
    .description(
      `run the containerd proxy snapshotter (overlayfs; accelerated layers from the shared directory); containerd: [proxy_plugins.${SNAPSHOTTER.pluginName}]`,
    )
    .option("--root <dir>", "where snapshots and their metadata are kept", SNAPSHOTTER.root)
    .option("--address <socket>", "unix socket containerd connects to", SNAPSHOTTER.address)
    .option("--shared <dir>", "the shared directory accelerated layers are mounted from (absent: every layer is fetched as usual)")
    .option("--node-name <name>", "this node's name in reports on the shared directory", hostname())
    .action(async (f: SnapshotterFlags) => {
      const log = createLogger("snapshotter");
      const root = resolve(f.root);
      const shared = f.shared ? resolve(f.shared) : undefined;
      let reporter: Reporter | undefined;
      const store = await SnapshotStore.open({ root, shared, log, onChange: () => reporter?.changed() });
      if (shared) reporter = startReporter(shared, f.nodeName, () => store, log);
      await mkdir(dirname(resolve(f.address)), { recursive: true });
      const server = await serveSnapshotter(store, resolve(f.address), log);
      log.info({ event: "ready", address: server.address, root, shared: shared ?? null, node: f.nodeName }, "snapshotter listening");
      stopOnSignal(async () => {
        await server.close();
        await reporter?.stop();
      });
    });
}
