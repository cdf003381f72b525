/**
 * Acceleration state on the shared directory, so every node and builder sees the same:
 * accelerate.json (enabled, images, last error) replaced atomically, and a lock file
 * (created with O_EXCL) for the one create or delete that runs at a time.
 */
import { hostname } from "node:os";
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AccelerateOperation, AccelerateState, NodeReport } from "../api/accelerate.js";
import { KilnError } from "../common/errors.js";
import { sharedLayout } from "./layout.js";

const EMPTY: AccelerateState = { enabled: false, images: [] };

export async function readState(shared: string): Promise<AccelerateState> {
  try {
    return AccelerateState.parse(JSON.parse(await readFile(sharedLayout.state(shared), "utf8")));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ...EMPTY, images: [] };
    throw new KilnError("INTERNAL", `${sharedLayout.state(shared)}: ${(err as Error).message}`);
  }
}

export async function writeState(shared: string, state: AccelerateState): Promise<void> {
  const path = sharedLayout.state(shared);
  await writeFile(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  await rename(`${path}.tmp`, path);
}

export async function updateState(shared: string, fn: (s: AccelerateState) => AccelerateState): Promise<AccelerateState> {
  const next = fn(await readState(shared));
  await writeState(shared, next);
  return next;
}

const lockPath = (shared: string) => join(shared, "accelerate.lock");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The operation in progress, if any; one left by a process that died on this host is cleared. */
export async function currentOperation(shared: string): Promise<AccelerateOperation | undefined> {
  let op: AccelerateOperation;
  try {
    op = AccelerateOperation.parse(JSON.parse(await readFile(lockPath(shared), "utf8")));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return undefined;
  }
  if (op.host === hostname() && !alive(op.pid)) {
    await rm(lockPath(shared), { force: true });
    return undefined;
  }
  return op;
}

/** Takes the lock for one create or delete; a second one meanwhile is refused, naming the one running. Answers the release. */
export async function acquireOperation(shared: string, kind: AccelerateOperation["kind"], image: string): Promise<() => Promise<void>> {
  await currentOperation(shared);
  const op: AccelerateOperation = { kind, image, host: hostname(), pid: process.pid, startedAt: new Date().toISOString() };
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(lockPath(shared), "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const running = await currentOperation(shared);
    throw new KilnError(
      "CONFLICT",
      running
        ? `a ${running.kind} of ${running.image} is running (host ${running.host}, pid ${running.pid}, since ${running.startedAt})`
        : "another operation is running",
    );
  }
  try {
    await handle.writeFile(JSON.stringify(op));
  } finally {
    await handle.close();
  }
  return () => rm(lockPath(shared), { force: true });
}

/** Runs `fn` holding the lock. */
export async function withOperation<T>(shared: string, kind: AccelerateOperation["kind"], image: string, fn: () => Promise<T>): Promise<T> {
  const release = await acquireOperation(shared, kind, image);
  try {
    return await fn();
  } finally {
    await release();
  }
}

export interface NodeStatus {
  report: NodeReport;
  fresh: boolean;
}

async function readReport(path: string, freshMs: number): Promise<NodeStatus | undefined> {
  try {
    const report = NodeReport.parse(JSON.parse(await readFile(path, "utf8")));
    return { report, fresh: Date.now() - Date.parse(report.updatedAt) < freshMs };
  } catch {
    return undefined; // absent, being replaced, or from another version
  }
}

/** One node's report (a peer asking about its own node reads one file, not every node's). */
export function readNodeReport(shared: string, node: string, freshMs: number): Promise<NodeStatus | undefined> {
  return readReport(sharedLayout.node(shared, node), freshMs);
}

/** Every node's report; `fresh` when written within `freshMs`. */
export async function readNodeReports(shared: string, freshMs: number): Promise<NodeStatus[]> {
  let names: string[];
  try {
    names = (await readdir(sharedLayout.nodes(shared))).filter((n) => n.endsWith(".json"));
  } catch {
    return [];
  }
  const out: NodeStatus[] = [];
  for (const n of names) {
    const status = await readReport(join(sharedLayout.nodes(shared), n), freshMs);
    if (status) out.push(status);
  }
  return out;
}

export async function ensureSharedLayout(shared: string): Promise<void> {
  await mkdir(sharedLayout.layers(shared), { recursive: true, mode: 0o755 });
  await mkdir(sharedLayout.nodes(shared), { recursive: true, mode: 0o755 });
}
