/**
 * Snapshots with the semantics of containerd's overlayfs snapshotter: each active or
 * view snapshot has `snapshots/<id>/fs` (and `work` when active); committing keeps the
 * directory and makes it a lower layer for children. A layer unpacked on shared
 * storage becomes a committed snapshot without a directory of its own: its mount
 * uses the shared directory as a read-only lower layer.
 */
import { existsSync, statSync } from "node:fs";
import { chown, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../common/logger.js";
import { matches, parseFilters } from "./filters.js";
import { loadMetadata, saveMetadata, type MetadataFile, type SnapshotRecord } from "./metadata.js";
import { mountsFor } from "./mounts.js";
import type { WireMount } from "./proto.js";
import { lookupSharedLayer } from "./shared.js";
import { diskUsage, type Usage } from "./usage.js";

export type SnapshotErrorCode = "NOT_FOUND" | "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "INVALID_ARGUMENT";

export class SnapshotError extends Error {
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface StoreOptions {
  root: string;
  /** The shared directory accelerated layers are mounted from. */
  shared?: string;
  log: Logger;
  /** Called after every change (the node report is rewritten). */
  onChange?: () => void;
}

export class SnapshotStore {
  private meta: MetadataFile;
  private readonly byName = new Map<string, SnapshotRecord>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly indexOff = existsSync("/sys/module/overlay/parameters/index");

  private constructor(private readonly opts: StoreOptions) {
    this.meta = loadMetadata(this.metadataPath);
    for (const s of this.meta.snapshots) this.byName.set(s.name, s);
  }

  static async open(opts: StoreOptions): Promise<SnapshotStore> {
    if (/[:,]/.test(opts.root)) throw new Error(`snapshotter root ${opts.root} must not contain ":" or "," (overlayfs mount options)`);
    await mkdir(join(opts.root, "snapshots"), { recursive: true, mode: 0o700 });
    return new SnapshotStore(opts);
  }

  private get metadataPath(): string {
    return join(this.opts.root, "metadata.json");
  }

  /** Changes run one at a time, in arrival order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private save(): void {
    this.meta.snapshots = [...this.byName.values()];
    saveMetadata(this.metadataPath, this.meta);
    this.opts.onChange?.();
  }

  private dir(s: SnapshotRecord): string {
    return join(this.opts.root, "snapshots", String(s.id));
  }

  /** The directory a snapshot's content is read from when it is a lower layer. */
  upperOf(s: SnapshotRecord): string {
    return s.sharedDir ?? join(this.dir(s), "fs");
  }

  get(key: string): SnapshotRecord {
    const s = this.byName.get(key);
    if (!s) throw new SnapshotError("NOT_FOUND", `snapshot ${key} does not exist`);
    return s;
  }

  /** The snapshot's ancestors, nearest first. */
  ancestors(s: SnapshotRecord): SnapshotRecord[] {
    const chain: SnapshotRecord[] = [];
    for (let p = s.parent; p !== ""; ) {
      const parent = this.get(p);
      chain.push(parent);
      p = parent.parent;
    }
    return chain;
  }

  all(): SnapshotRecord[] {
    return [...this.byName.values()];
  }

  private mounts(s: SnapshotRecord): WireMount[] {
    if (s.kind === "COMMITTED") throw new SnapshotError("FAILED_PRECONDITION", `snapshot ${s.name} is committed: it has no mounts of its own`);
    const lowers = this.ancestors(s).map((a) => this.upperOf(a));
    return mountsFor({ kind: s.kind, upper: join(this.dir(s), "fs"), work: join(this.dir(s), "work"), lowers, indexOff: this.indexOff });
  }

  prepare(key: string, parent: string, labels: Record<string, string>): Promise<WireMount[]> {
    return this.exclusive(() => this.create("ACTIVE", key, parent, labels));
  }

  view(key: string, parent: string, labels: Record<string, string>): Promise<WireMount[]> {
    return this.exclusive(() => this.create("VIEW", key, parent, labels));
  }

  private checkParent(parent: string): SnapshotRecord | undefined {
    if (parent === "") return undefined;
    const p = this.byName.get(parent);
    if (!p) throw new SnapshotError("NOT_FOUND", `parent snapshot ${parent} does not exist`);
    if (p.kind !== "COMMITTED") throw new SnapshotError("INVALID_ARGUMENT", `parent ${parent} is not a committed snapshot`);
    return p;
  }

  private async create(kind: "ACTIVE" | "VIEW", key: string, parent: string, labels: Record<string, string>): Promise<WireMount[]> {
    if (!key) throw new SnapshotError("INVALID_ARGUMENT", "snapshot key is empty");
    if (this.byName.has(key)) throw new SnapshotError("ALREADY_EXISTS", `snapshot ${key} already exists`);
    const parentRecord = this.checkParent(parent);
    const now = Date.now();
    if (kind === "ACTIVE") {
      const shared = lookupSharedLayer(this.opts.shared, labels);
      if (shared && "dir" in shared) {
        // The unpacker prepares the layer's snapshot: answer that its chain ID is already committed, mounted from shared storage.
        if (!this.byName.has(shared.chainId)) {
          const rec: SnapshotRecord = { id: 0, name: shared.chainId, kind: "COMMITTED", parent, labels, createdMs: now, updatedMs: now, sharedDir: shared.dir };
          this.byName.set(rec.name, rec);
          this.save();
          this.opts.log.info({ event: "shared-layer", chainId: shared.chainId, dir: shared.dir, parent }, "layer mounted from shared storage");
        }
        throw new SnapshotError("ALREADY_EXISTS", `target snapshot ${shared.chainId} exists (layer on shared storage)`);
      }
      if (shared)
        this.opts.log.warn(
          { event: "shared-layer-unavailable", chainId: shared.chainId, key, reason: shared.reason },
          `layer fetched as usual: ${shared.reason}`,
        );
    }
    const rec: SnapshotRecord = { id: this.meta.nextId++, name: key, kind, parent, labels, createdMs: now, updatedMs: now };
    const dir = this.dir(rec);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, "fs"), { recursive: true, mode: 0o755 });
    if (kind === "ACTIVE") await mkdir(join(dir, "work"), { mode: 0o711 });
    if (parentRecord) {
      // As containerd: the new upper directory belongs to whoever owns the parent's root.
      const st = statSync(this.upperOf(parentRecord));
      await chown(join(dir, "fs"), st.uid, st.gid);
    }
    this.byName.set(key, rec);
    try {
      this.save();
    } catch (err) {
      this.byName.delete(key);
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return this.mounts(rec);
  }

  async mountsOf(key: string): Promise<WireMount[]> {
    return this.mounts(this.get(key));
  }

  commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    return this.exclusive(async () => {
      const s = this.get(key);
      if (s.kind !== "ACTIVE") throw new SnapshotError("FAILED_PRECONDITION", `snapshot ${key} is not active`);
      if (this.byName.has(name)) throw new SnapshotError("ALREADY_EXISTS", `snapshot ${name} already exists`);
      const usage = await diskUsage(join(this.dir(s), "fs"));
      const committed: SnapshotRecord = { ...s, name, kind: "COMMITTED", labels, updatedMs: Date.now(), usage };
      this.byName.delete(key);
      this.byName.set(name, committed);
      this.save();
      await rm(join(this.dir(s), "work"), { recursive: true, force: true });
    });
  }

  remove(key: string): Promise<void> {
    return this.exclusive(async () => {
      const s = this.get(key);
      const child = this.all().find((c) => c.parent === key);
      if (child) throw new SnapshotError("FAILED_PRECONDITION", `cannot remove snapshot ${key}: ${child.name} is its child`);
      this.byName.delete(key);
      this.save();
      // A shared layer's directory is never removed here: other nodes mount it.
      if (!s.sharedDir) await rm(this.dir(s), { recursive: true, force: true });
    });
  }

  /** Labels are the only mutable field; `paths` ("labels" or "labels.<key>") limits which change. */
  update(key: string, labels: Record<string, string>, paths: string[]): Promise<SnapshotRecord> {
    return this.exclusive(async () => {
      const s = this.get(key);
      let next = { ...s.labels };
      if (paths.length === 0 || paths.includes("labels")) next = { ...labels };
      else {
        for (const p of paths) {
          if (!p.startsWith("labels.")) throw new SnapshotError("INVALID_ARGUMENT", `cannot update field ${p} of snapshot ${key}`);
          const k = p.slice("labels.".length);
          if (labels[k] === undefined) delete next[k];
          else next[k] = labels[k];
        }
      }
      const updated = { ...s, labels: next, updatedMs: Date.now() };
      this.byName.set(key, updated);
      this.save();
      return updated;
    });
  }

  list(filters: string[]): SnapshotRecord[] {
    const f = parseFilters(filters);
    return this.all().filter((s) => matches({ name: s.name, parent: s.parent, kind: s.kind, labels: s.labels }, f));
  }

  /** Space taken on this node: committed snapshots as measured at commit, active ones now; shared layers take none. */
  async usage(key: string): Promise<Usage> {
    const s = this.get(key);
    if (s.sharedDir) return { size: 0, inodes: 0 };
    if (s.kind === "COMMITTED" && s.usage) return s.usage;
    return diskUsage(join(this.dir(s), "fs"));
  }

  /** Removes snapshot directories no record refers to (left by a crash between creating a directory and saving). */
  cleanup(): Promise<number> {
    return this.exclusive(async () => {
      const known = new Set(
        this.all()
          .filter((s) => !s.sharedDir)
          .map((s) => String(s.id)),
      );
      let removed = 0;
      for (const d of await readdir(join(this.opts.root, "snapshots"))) {
        if (known.has(d)) continue;
        await rm(join(this.opts.root, "snapshots", d), { recursive: true, force: true });
        removed++;
      }
      return removed;
    });
  }
}
