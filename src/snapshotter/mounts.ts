/** The mounts of a snapshot, with containerd's overlayfs snapshotter's semantics. */
import type { WireMount } from "./proto.js";

export interface MountPlan {
  kind: "ACTIVE" | "VIEW";
  /** The snapshot's own upper directory (`fs`) and overlay work directory. */
  upper: string;
  work: string;
  /** Lower directories, nearest parent first. */
  lowers: string[];
  /** Pass `index=off` (the kernel's overlay module has the index feature). */
  indexOff: boolean;
}

/**
 * No parents: a bind mount of the snapshot's own directory (read-only for a view).
 * A view of one parent: a read-only bind mount of that parent. Otherwise overlay,
 * with upperdir/workdir for an active snapshot and only lowerdir for a view.
 */
export function mountsFor(p: MountPlan): WireMount[] {
  if (p.lowers.length === 0) return [{ type: "bind", source: p.upper, options: [p.kind === "VIEW" ? "ro" : "rw", "rbind"] }];
  if (p.kind === "VIEW" && p.lowers.length === 1) return [{ type: "bind", source: p.lowers[0]!, options: ["ro", "rbind"] }];
  const options = p.indexOff ? ["index=off"] : [];
  if (p.kind === "ACTIVE") options.push(`workdir=${p.work}`, `upperdir=${p.upper}`);
  options.push(`lowerdir=${p.lowers.join(":")}`);
  return [{ type: "overlay", source: "overlay", options }];
}
