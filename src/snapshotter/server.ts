/** The containerd proxy snapshotter: snapshots.v1 over gRPC on a unix socket, backed by a SnapshotStore. */
import { Server, ServerCredentials, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from "@grpc/grpc-js";
import { chmod, rm } from "node:fs/promises";
import type { Logger } from "../common/logger.js";
import type { SnapshotRecord } from "./metadata.js";
import { SNAPSHOTS_SERVICE, type WireInfo, type WireMount } from "./proto.js";
import { SnapshotError, type SnapshotStore } from "./store.js";

const CODES: Record<SnapshotError["code"], status> = {
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
};

function timestamp(ms: number) {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export function toWireInfo(s: SnapshotRecord): WireInfo {
  return { name: s.name, parent: s.parent, kind: s.kind, created_at: timestamp(s.createdMs), updated_at: timestamp(s.updatedMs), labels: s.labels };
}

interface KeyRequest {
  key: string;
}
interface CreateRequest extends KeyRequest {
  parent: string;
  labels: Record<string, string>;
}

/** containerd reads the gRPC status code: NotFound, AlreadyExists (the unpacker's cue to skip a layer), and so on. */
function unary<Req, Res>(log: Logger, method: string, fn: (req: Req, namespace: string) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const namespace = String(call.metadata.get("containerd-namespace")[0] ?? "");
    fn(call.request, namespace).then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (err instanceof SnapshotError) {
          log.debug({ method, namespace, request: call.request, code: err.code }, err.message);
          return callback({ code: CODES[err.code], details: err.message });
        }
        log.error({ method, namespace, err }, `${method} failed`);
        callback({ code: status.INTERNAL, details: (err as Error).message });
      },
    );
  };
}

export interface SnapshotterServer {
  address: string;
  close(): Promise<void>;
}

export async function serveSnapshotter(store: SnapshotStore, socketPath: string, log: Logger): Promise<SnapshotterServer> {
  const server = new Server();
  const mounts = (m: WireMount[]) => ({ mounts: m });
  server.addService(SNAPSHOTS_SERVICE, {
    Prepare: unary<CreateRequest, unknown>(log, "Prepare", async (r) => mounts(await store.prepare(r.key, r.parent, r.labels))),
    View: unary<CreateRequest, unknown>(log, "View", async (r) => mounts(await store.view(r.key, r.parent, r.labels))),
    Mounts: unary<KeyRequest, unknown>(log, "Mounts", async (r) => mounts(await store.mountsOf(r.key))),
    Commit: unary<{ name: string; key: string; labels: Record<string, string> }, unknown>(log, "Commit", async (r) => {
      await store.commit(r.name, r.key, r.labels);
      return {};
    }),
    Remove: unary<KeyRequest, unknown>(log, "Remove", async (r) => {
      await store.remove(r.key);
      return {};
    }),
    Stat: unary<KeyRequest, unknown>(log, "Stat", async (r) => ({ info: toWireInfo(store.get(r.key)) })),
    Update: unary<{ info: WireInfo | null; update_mask: { paths: string[] } | null }, unknown>(log, "Update", async (r) => {
      if (!r.info) throw new SnapshotError("INVALID_ARGUMENT", "Update without info");
      return { info: toWireInfo(await store.update(r.info.name, r.info.labels, r.update_mask?.paths ?? [])) };
    }),
    Usage: unary<KeyRequest, unknown>(log, "Usage", async (r) => store.usage(r.key)),
    Cleanup: unary<unknown, unknown>(log, "Cleanup", async () => {
      const removed = await store.cleanup();
      if (removed) log.info({ event: "cleanup", removed }, "removed orphaned snapshot directories");
      return {};
    }),
    List: (call: ServerWritableStream<{ filters: string[] }, unknown>) => {
      try {
        const infos = store.list(call.request.filters).map(toWireInfo);
        // containerd's own snapshotters send batches of 100.
        for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100) });
        call.end();
      } catch (err) {
        call.destroy(Object.assign(new Error((err as Error).message), { code: err instanceof SnapshotError ? CODES[err.code] : status.INTERNAL }));
      }
    },
  });
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  // Only root (containerd) talks to it.
  await chmod(socketPath, 0o600);
  return {
    address: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 2_000).unref();
      }),
  };
}
