import { callJson } from "./http-json.js";
import { ImageImportReply, PEER_PATHS, PeerDeleteReply, PrefetchReply, type ImageImportRequestInput, type PrefetchRequestInput } from "./peer.js";

/** Control calls to a peer's upload port (the byte path lives in src/peer). */
export class PeerControlClient {
  constructor(readonly baseUrl: string) {}

  /** `controlToken`: the secret the peer announced to its scheduler. */
  prefetch(req: PrefetchRequestInput, controlToken: string) {
    return callJson(this.baseUrl, PEER_PATHS.prefetch, PrefetchReply, { body: req, timeoutMs: 5_000, headers: bearer(controlToken) });
  }

  /** A runtime pull can take minutes for a large image. */
  importImage(req: ImageImportRequestInput, controlToken: string) {
    return callJson(this.baseUrl, PEER_PATHS.imageImport, ImageImportReply, { body: req, timeoutMs: 15 * 60_000, headers: bearer(controlToken) });
  }

  deleteTask(taskId: string, controlToken: string) {
    return callJson(this.baseUrl, PEER_PATHS.controlTask(taskId), PeerDeleteReply, { method: "DELETE", timeoutMs: 10_000, headers: bearer(controlToken) });
  }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
