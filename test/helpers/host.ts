/** A host's announcement as the scheduler's unit tests use it: every field set, overrides on top. */
import type { HostAnnounce } from "../../src/api/scheduler.js";

export function hostInfo(id: string, overrides: Partial<HostAnnounce> = {}): HostAnnounce {
  return {
    id,
    hostname: id,
    ip: "127.0.0.1",
    uploadPort: 9,
    isSeed: false,
    location: "",
    idc: "",
    uploadSlots: 10,
    freeUploadSlots: 10,
    controlToken: "t".repeat(32),
    labels: {},
    version: "",
    ...overrides,
  };
}
