/**
 * containerd's snapshots.v1 gRPC API (api/services/snapshots/v1/snapshots.proto and
 * api/types/mount.proto), written out as a protobuf JSON descriptor so that it is
 * bundled with the code. Field numbers are containerd's; only what the snapshotter
 * serves is here.
 */
import { fromJSON } from "@grpc/proto-loader";
import { loadPackageDefinition, type ServiceDefinition } from "@grpc/grpc-js";

const str = (id: number) => ({ type: "string", id });
const labels = (id: number) => ({ keyType: "string", type: "string", id });
const mounts = { mounts: { rule: "repeated", type: "containerd.types.Mount", id: 1 } };

const DESCRIPTOR = {
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Empty: { fields: {} },
            Timestamp: { fields: { seconds: { type: "int64", id: 1 }, nanos: { type: "int32", id: 2 } } },
            FieldMask: { fields: { paths: { rule: "repeated", type: "string", id: 1 } } },
          },
        },
      },
    },
    containerd: {
      nested: {
        types: {
          nested: {
            Mount: { fields: { type: str(1), source: str(2), target: str(3), options: { rule: "repeated", type: "string", id: 4 } } },
          },
        },
        services: {
          nested: {
            snapshots: {
              nested: {
                v1: {
                  nested: {
                    Snapshots: {
                      methods: {
                        Prepare: { requestType: "PrepareSnapshotRequest", responseType: "PrepareSnapshotResponse" },
                        View: { requestType: "ViewSnapshotRequest", responseType: "ViewSnapshotResponse" },
                        Mounts: { requestType: "MountsRequest", responseType: "MountsResponse" },
                        Commit: { requestType: "CommitSnapshotRequest", responseType: "google.protobuf.Empty" },
                        Remove: { requestType: "RemoveSnapshotRequest", responseType: "google.protobuf.Empty" },
                        Stat: { requestType: "StatSnapshotRequest", responseType: "StatSnapshotResponse" },
                        Update: { requestType: "UpdateSnapshotRequest", responseType: "UpdateSnapshotResponse" },
                        List: { requestType: "ListSnapshotsRequest", responseType: "ListSnapshotsResponse", responseStream: true },
                        Usage: { requestType: "UsageRequest", responseType: "UsageResponse" },
                        Cleanup: { requestType: "CleanupRequest", responseType: "google.protobuf.Empty" },
                      },
                    },
                    PrepareSnapshotRequest: { fields: { snapshotter: str(1), key: str(2), parent: str(3), labels: labels(4) } },
                    PrepareSnapshotResponse: { fields: mounts },
                    ViewSnapshotRequest: { fields: { snapshotter: str(1), key: str(2), parent: str(3), labels: labels(4) } },
                    ViewSnapshotResponse: { fields: mounts },
                    MountsRequest: { fields: { snapshotter: str(1), key: str(2) } },
                    MountsResponse: { fields: mounts },
                    RemoveSnapshotRequest: { fields: { snapshotter: str(1), key: str(2) } },
                    CommitSnapshotRequest: { fields: { snapshotter: str(1), name: str(2), key: str(3), labels: labels(4) } },
                    StatSnapshotRequest: { fields: { snapshotter: str(1), key: str(2) } },
                    Kind: { values: { UNKNOWN: 0, VIEW: 1, ACTIVE: 2, COMMITTED: 3 } },
                    Info: {
                      fields: {
                        name: str(1),
                        parent: str(2),
                        kind: { type: "Kind", id: 3 },
                        created_at: { type: "google.protobuf.Timestamp", id: 4 },
                        updated_at: { type: "google.protobuf.Timestamp", id: 5 },
                        labels: labels(6),
                      },
                    },
                    StatSnapshotResponse: { fields: { info: { type: "Info", id: 1 } } },
                    UpdateSnapshotRequest: {
                      fields: { snapshotter: str(1), info: { type: "Info", id: 2 }, update_mask: { type: "google.protobuf.FieldMask", id: 3 } },
                    },
                    UpdateSnapshotResponse: { fields: { info: { type: "Info", id: 1 } } },
                    ListSnapshotsRequest: { fields: { snapshotter: str(1), filters: { rule: "repeated", type: "string", id: 2 } } },
                    ListSnapshotsResponse: { fields: { info: { rule: "repeated", type: "Info", id: 1 } } },
                    UsageRequest: { fields: { snapshotter: str(1), key: str(2) } },
                    UsageResponse: { fields: { size: { type: "int64", id: 1 }, inodes: { type: "int64", id: 2 } } },
                    CleanupRequest: { fields: { snapshotter: str(1) } },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

/** Wire shapes as proto-loader hands them over (keepCase, longs and enums as strings/numbers). */
export type SnapshotKind = "VIEW" | "ACTIVE" | "COMMITTED";
export interface WireMount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}
export interface WireTimestamp {
  seconds: number;
  nanos: number;
}
export interface WireInfo {
  name: string;
  parent: string;
  kind: SnapshotKind;
  created_at: WireTimestamp;
  updated_at: WireTimestamp;
  labels: Record<string, string>;
}

// The literal is a valid protobufjs INamespace; its inferred type is just too narrow for the nested unions.
const packageDefinition = fromJSON(DESCRIPTOR as unknown as Parameters<typeof fromJSON>[0], { keepCase: true, longs: Number, enums: String, defaults: true });
type Namespace = { [name: string]: Namespace & { service: ServiceDefinition } };
const root = loadPackageDefinition(packageDefinition) as unknown as Namespace;

/** The Snapshots service definition, for `server.addService`. */
export const SNAPSHOTS_SERVICE: ServiceDefinition = root.containerd!.services!.snapshots!.v1!.Snapshots!.service;
/** The client constructor (for tests and `kiln accelerate` talking to a snapshotter). */
export const SnapshotsClient = root.containerd!.services!.snapshots!.v1!.Snapshots! as unknown as new (
  address: string,
  credentials: import("@grpc/grpc-js").ChannelCredentials,
) => import("@grpc/grpc-js").Client;
