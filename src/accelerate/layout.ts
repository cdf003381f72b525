/**
 * Where accelerated images live on the shared directory (NFS or any filesystem every
 * node mounts at the same path):
 *   layers/<chain ID hex>/     one unpacked layer, overlayfs upper-dir format (complete: only ever renamed into place)
 *   layers/.tmp-<hex>-<rand>/  a layer being unpacked
 *   nodes/<node>.json          what each node's snapshotter mounts from here (its report)
 *   accelerate.json            accelerated images and the current operation's state
 * The chain ID's "sha256:" prefix is left out of directory names: overlayfs separates
 * lower directories with ":".
 */
import { join } from "node:path";

const CHAIN_ID = /^sha256:([a-f0-9]{64})$/;

export function chainIdHex(chainId: string): string {
  const m = CHAIN_ID.exec(chainId);
  if (!m) throw new Error(`not a sha256 chain ID: ${JSON.stringify(chainId)}`);
  return m[1]!;
}

export function isChainId(s: string): boolean {
  return CHAIN_ID.test(s);
}

export const sharedLayout = {
  layers: (shared: string) => join(shared, "layers"),
  layer: (shared: string, chainId: string) => join(shared, "layers", chainIdHex(chainId)),
  tmpLayer: (shared: string, chainId: string, suffix: string) => join(shared, "layers", `.tmp-${chainIdHex(chainId)}-${suffix}`),
  nodes: (shared: string) => join(shared, "nodes"),
  node: (shared: string, node: string) => join(shared, "nodes", `${node.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`),
  state: (shared: string) => join(shared, "accelerate.json"),
};

/** Snapshot labels (layer annotations with containerd's `containerd.io/snapshot/` prefix reach the snapshotter as labels). */
export const ACCEL_LABELS = {
  /** The chain ID containerd's unpacker names the layer's committed snapshot. */
  snapshotRef: "containerd.io/snapshot.ref",
  /** Set on each layer of a target manifest: the layer is unpacked on shared storage under this chain ID. */
  chainId: "containerd.io/snapshot/kiln.chain-id",
} as const;
