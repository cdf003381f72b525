/** enable, get, create, delete, disable: the seed's interface, with state on the shared directory. */
import { randomBytes } from "node:crypto";
import { rename, rm, stat } from "node:fs/promises";
import type { AccelerateStatus, AccelerateView } from "../api/accelerate.js";
import { SNAPSHOTTER } from "../common/defaults.js";
import { KilnError } from "../common/errors.js";
import { formatImageName, parseImageName } from "../registry/image-name.js";
import { createAccelerated, type CreateOptions } from "./create.js";
import { chainIdHex, sharedLayout } from "./layout.js";
import { checkShared } from "./shared-dir.js";
import { acquireOperation, currentOperation, ensureSharedLayout, readNodeReports, readState, updateState, withOperation } from "./state.js";

export async function getView(shared: string): Promise<AccelerateView> {
  const [check, state, op, nodes] = await Promise.all([
    checkShared(shared),
    readState(shared),
    currentOperation(shared),
    readNodeReports(shared, SNAPSHOTTER.nodeReportFreshMs),
  ]);
  const up = nodes.filter((n) => n.fresh).map((n) => n.report.node);
  const agentReady = up.length > 0;
  let status: AccelerateStatus = "Ready";
  if (op) status = op.kind === "create" ? "Creating" : "Deleting";
  else if (!agentReady) status = "Unknown";
  else if (state.lastError) status = state.lastError.kind === "create" ? "CreateError" : "DeleteError";
  return {
    Enable: state.enabled,
    NfsReady: check.ready,
    AgentReady: agentReady,
    Status: status,
    Error: state.lastError?.message ?? (check.ready ? "" : (check.reason ?? "")),
    Images:
      status === "Creating" || status === "Deleting" || !agentReady
        ? []
        : state.images.map((i) => ({ OriginalImage: i.original, TargetImage: i.target, Size: i.size, Layers: i.chainIds.length })),
    SharedDir: shared,
    Nodes: up.sort(),
  };
}

export async function enable(shared: string): Promise<AccelerateView> {
  const check = await checkShared(shared);
  if (!check.ready) throw new KilnError("UNPROCESSABLE", `cannot enable image acceleration: ${check.reason}`);
  await ensureSharedLayout(shared);
  await updateState(shared, (s) => ({ ...s, enabled: true }));
  return getView(shared);
}

/**
 * Checks and takes the lock, then creates in the background: `done` settles when the
 * image is accelerated (or the failure is recorded as CreateError). The manager's
 * routes answer once the lock is held; the CLI waits for `done`.
 */
export async function startCreate(o: CreateOptions): Promise<{ done: Promise<void> }> {
  const state = await readState(o.shared);
  if (!state.enabled) throw new KilnError("UNPROCESSABLE", "image acceleration is not enabled here: run kiln accelerate enable first");
  const original = formatImageName(parseImageName(o.original));
  const release = await acquireOperation(o.shared, "create", original);
  const done = (async () => {
    try {
      const { image } = await createAccelerated(o);
      await updateState(o.shared, (s) => ({ ...s, lastError: undefined, images: [...s.images.filter((i) => i.original !== image.original), image] }));
    } catch (err) {
      await updateState(o.shared, (s) => ({ ...s, lastError: { kind: "create", image: original, message: (err as Error).message } }));
      throw err;
    } finally {
      await release();
    }
  })();
  return { done };
}

export async function create(o: CreateOptions): Promise<AccelerateView> {
  await (await startCreate(o)).done;
  return getView(o.shared);
}

/** Nodes whose snapshots use any of these layers, described for the refusal message. */
async function usersOf(shared: string, chainIds: Set<string>): Promise<string[]> {
  const out: string[] = [];
  for (const { report, fresh } of await readNodeReports(shared, SNAPSHOTTER.nodeReportFreshMs)) {
    const snapshots = report.layers.filter((l) => chainIds.has(l.chainId)).flatMap((l) => l.snapshots);
    if (!snapshots.length) continue;
    const count = (kind: string) => new Set(snapshots.filter((s) => s.kind === kind).map((s) => s.name)).size;
    const parts = [count("ACTIVE") && `${count("ACTIVE")} container rootfs snapshot(s)`, count("VIEW") && `${count("VIEW")} read-only view(s)`].filter(Boolean);
    const what = parts.length ? parts.join(", ") : "the image is pulled there";
    out.push(`${report.node} (${what}${fresh ? "" : `; last report ${report.updatedAt}`})`);
  }
  return out;
}

/** A layer is moved aside before it is removed: a half-deleted layer never looks whole. */
async function removeLayer(shared: string, chainId: string): Promise<void> {
  const dir = sharedLayout.layer(shared, chainId);
  if (!(await stat(dir).catch(() => undefined))) return;
  const doomed = `${sharedLayout.layers(shared)}/.del-${chainIdHex(chainId)}-${randomBytes(4).toString("hex")}`;
  await rename(dir, doomed);
  await rm(doomed, { recursive: true, force: true });
}

export async function remove(shared: string, originalName: string, force = false): Promise<AccelerateView> {
  const original = formatImageName(parseImageName(originalName));
  const state = await readState(shared);
  const image = state.images.find((i) => i.original === original);
  if (!image) throw new KilnError("NOT_FOUND", `${original} is not accelerated`);
  // Layers another accelerated image also has stay.
  const others = new Set(state.images.filter((i) => i !== image).flatMap((i) => i.chainIds));
  const doomed = new Set(image.chainIds.filter((c) => !others.has(c)));
  const users = await usersOf(shared, doomed);
  if (users.length && !force) {
    throw new KilnError("CONFLICT", `${original} is in use on ${users.join(", ")}: its containers would get I/O errors. Remove them first, or use --force`);
  }
  await withOperation(shared, "delete", original, async () => {
    try {
      for (const c of doomed) await removeLayer(shared, c);
      await updateState(shared, (s) => ({ ...s, lastError: undefined, images: s.images.filter((i) => i.original !== original) }));
    } catch (err) {
      await updateState(shared, (s) => ({ ...s, lastError: { kind: "delete", image: original, message: (err as Error).message } }));
      throw err;
    }
  });
  return getView(shared);
}

export async function disable(shared: string, force = false): Promise<AccelerateView> {
  const state = await readState(shared);
  const users = await usersOf(shared, new Set(state.images.flatMap((i) => i.chainIds)));
  if (users.length && !force)
    throw new KilnError("CONFLICT", `accelerated images are in use on ${users.join(", ")}. Remove those containers and images first, or use --force`);
  await updateState(shared, (s) => ({ ...s, enabled: false }));
  return getView(shared);
}
