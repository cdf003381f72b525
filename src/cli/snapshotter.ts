/** `kiln snapshotter`: the containerd proxy snapshotter, with accelerated layers mounted from the shared directory. */
import type { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { ACCELERATE_NODE_LABEL, SNAPSHOTTER } from "../common/defaults.js";
import { createLogger } from "../common/logger.js";
import { startReporter, type Reporter } from "../snapshotter/report.js";
import { serveSnapshotter } from "../snapshotter/server.js";
import { SnapshotStore } from "../snapshotter/store.js";
import { stopOnSignal } from "./signals.js";
import { patchNodeLabels, type NodeApiOptions } from "./node-location.js";
import type { Logger } from "../common/logger.js";

interface SnapshotterFlags {
  root: string;
  address: string;
  shared?: string;
  nodeName: string;
  labelNode?: boolean;
  apiServer?: string;
  tokenFile?: string;
  caFile?: string;
}

/** Keeps the node's label in step with whether the shared directory works here: patched on each change only. */
function nodeLabeller(node: string, opts: NodeApiOptions, log: Logger): (ok: boolean) => void {
  let labelled: boolean | undefined;
  let patching = Promise.resolve();
  return (ok) => {
    if (ok === labelled) return;
    labelled = ok;
    patching = patching.then(() =>
      patchNodeLabels(node, { [ACCELERATE_NODE_LABEL]: ok ? "true" : null }, opts).then(
        () =>
          log.info(
            { event: "node-labelled", node, label: ACCELERATE_NODE_LABEL, set: ok },
            ok ? "node labelled: it mounts accelerated images" : "node label removed: the shared directory does not work here",
          ),
        (err: Error) => {
          labelled = undefined; // try again after the next report
          log.warn({ event: "node-label-failed", node, err: err.message }, "cannot label the node");
        },
      ),
    );
  };
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
    .option("--node-name <name>", "this node's name in reports on the shared directory", process.env.NODE_NAME ?? hostname())
    .option(
      "--label-node",
      `keep the Kubernetes label ${ACCELERATE_NODE_LABEL}=true on this node (--node-name) while the shared directory works here; needs patch on nodes`,
    )
    .option("--api-server <url>", "Kubernetes API server for --label-node (default: the in-cluster one)")
    .option("--token-file <file>", "bearer token for --label-node (default: the pod's service account token)")
    .option("--ca-file <file>", "CA of the API server (default: the pod's service account CA)")
    .action(async (f: SnapshotterFlags) => {
      const log = createLogger("snapshotter");
      const root = resolve(f.root);
      const shared = f.shared ? resolve(f.shared) : undefined;
      let reporter: Reporter | undefined;
      const store = await SnapshotStore.open({ root, shared, log, onChange: () => reporter?.changed() });
      const onHealth = f.labelNode ? nodeLabeller(f.nodeName, f, log) : undefined;
      if (shared) reporter = startReporter(shared, f.nodeName, () => store, log, onHealth);
      await mkdir(dirname(resolve(f.address)), { recursive: true });
      const server = await serveSnapshotter(store, resolve(f.address), log);
      log.info({ event: "ready", address: server.address, root, shared: shared ?? null, node: f.nodeName }, "snapshotter listening");
      stopOnSignal(async () => {
        await server.close();
        await reporter?.stop();
      });
    });
}
