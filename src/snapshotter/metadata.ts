/** The snapshotter's metadata: one JSON file under its root (mode 0600), replaced atomically on every change. */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { z } from "zod";

export const SnapshotRecord = z.object({
  id: z.number().int(),
  name: z.string(),
  kind: z.enum(["ACTIVE", "VIEW", "COMMITTED"]),
  parent: z.string(),
  labels: z.record(z.string(), z.string()),
  createdMs: z.number(),
  updatedMs: z.number(),
  /** A layer unpacked on shared storage, mounted read-only from there: the snapshot has no directory of its own. */
  sharedDir: z.string().optional(),
  /** Disk usage measured at commit. */
  usage: z.object({ size: z.number(), inodes: z.number() }).optional(),
});
export type SnapshotRecord = z.infer<typeof SnapshotRecord>;

const MetadataFile = z.object({
  version: z.literal(1),
  nextId: z.number().int(),
  snapshots: z.array(SnapshotRecord),
});
export type MetadataFile = z.infer<typeof MetadataFile>;

export function loadMetadata(path: string): MetadataFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, nextId: 1, snapshots: [] };
    throw err;
  }
  return MetadataFile.parse(JSON.parse(text));
}

/** Written to a temporary file, synced, then renamed over the old one: a crash leaves the old or the new state, never half. */
export function saveMetadata(path: string, data: MetadataFile): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, JSON.stringify(data));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
