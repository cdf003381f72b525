/**
 * Nodes that joined a pull schedule since its last run: active peers its selector
 * picks that the last run did not see selected (new nodes, nodes back from being
 * inactive, nodes that gained a matching label). The Image Puller's DaemonSet pulls on
 * a new node at once; a run restricted to these nodes does the same, and its status
 * is merged into the last run's.
 */
import type { PullStatus } from "../../api/puller.js";
import type { PullNode } from "./run.js";

/** Selected nodes of `nodes` that `last` does not list as selected. */
export function joinedSince(last: PullStatus, nodes: readonly PullNode[]): PullNode[] {
  const seen = new Set(last.nodes.filter((n) => n.selected).map((n) => n.host_id));
  return nodes.filter((n) => n.selected && !seen.has(n.hostId));
}

/** The last run's status with `partial` (a run over some hosts) written over it: their nodes and cells replaced, images as last checked. */
export function mergeStatus(last: PullStatus, partial: PullStatus): PullStatus {
  const hosts = new Set(partial.nodes.map((n) => n.host_id));
  const checked = new Map(partial.images.map((i) => [i.name, i]));
  const known = new Set(last.images.map((i) => i.name));
  return {
    images: [...last.images.map((i) => checked.get(i.name) ?? i), ...partial.images.filter((i) => !known.has(i.name))],
    nodes: [...last.nodes.filter((n) => !hosts.has(n.host_id)), ...partial.nodes],
    cells: [...last.cells.filter((c) => !hosts.has(c.host_id)), ...partial.cells],
  };
}
