/** The containerd configuration that loads kiln's snapshotter (`kiln config containerd --snapshotter`). */
import { SNAPSHOTTER } from "../common/defaults.js";

export interface SnapshotterConfigOptions {
  /** The snapshotter's socket (`kiln snapshotter --address`). */
  address?: string;
  /** Also make it the snapshotter of Kubernetes pods (CRI), with the layer annotations the lazy unpacker needs (default true). */
  cri?: boolean;
}

/** A config version 2 fragment to merge into /etc/containerd/config.toml. */
export function containerdSnapshotterToml(o: SnapshotterConfigOptions = {}): { path: string; content: string } {
  const name = SNAPSHOTTER.pluginName;
  const lines = ["[proxy_plugins]", `  [proxy_plugins.${name}]`, '    type = "snapshot"', `    address = "${o.address ?? SNAPSHOTTER.address}"`];
  if (o.cri ?? true) {
    lines.push(
      "",
      '[plugins."io.containerd.grpc.v1.cri".containerd]',
      `  snapshotter = "${name}"`,
      "  # Layer annotations reach the snapshotter: what lets it mount accelerated layers instead of fetching them.",
      "  disable_snapshot_annotations = false",
    );
  }
  return { path: "/etc/containerd/config.toml", content: `${lines.join("\n")}\n` };
}
