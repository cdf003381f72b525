/** Which layers the snapshotter mounts from shared storage instead of letting containerd fetch and unpack them. */
import { statSync } from "node:fs";
import { ACCEL_LABELS, isChainId, sharedLayout } from "../accelerate/layout.js";

export type SharedLookup = { dir: string; chainId: string } | { reason: string; chainId: string } | undefined;

/**
 * undefined: an ordinary layer. `dir`: mount it from there. `reason`: the layer is
 * accelerated but cannot be used on this node; it is fetched as usual, and the
 * caller logs why.
 */
export function lookupSharedLayer(shared: string | undefined, labels: Record<string, string>): SharedLookup {
  const chainId = labels[ACCEL_LABELS.chainId];
  if (chainId === undefined) return undefined;
  const ref = labels[ACCEL_LABELS.snapshotRef];
  if (!isChainId(chainId)) return { chainId, reason: `label ${ACCEL_LABELS.chainId} is not a sha256 chain ID` };
  if (ref !== chainId) return { chainId, reason: `label ${ACCEL_LABELS.chainId} (${chainId}) differs from containerd's chain ID ${ref ?? "(none)"}` };
  if (!shared) return { chainId, reason: "this snapshotter runs without --shared" };
  if (!isDirectory(sharedLayout.layers(shared))) return { chainId, reason: `shared directory ${shared} has no layers/ (not mounted?)` };
  const dir = sharedLayout.layer(shared, chainId);
  if (!isDirectory(dir)) return { chainId, reason: `layer ${chainId} is not unpacked in ${sharedLayout.layers(shared)}` };
  return { chainId, dir };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
