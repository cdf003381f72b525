/** Fetches one piece from a parent's upload server (the byte path: node:http, no framework). */
import http, { type IncomingMessage } from "node:http";
import { describeNetworkError } from "../../common/errors.js";
import { PEER_PATHS } from "../../api/peer.js";
import type { ParentInfo } from "../../api/scheduler.js";

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export class PieceFetchError extends Error {
  constructor(
    readonly kind: "unreachable" | "timeout" | "http_error" | "busy",
    message: string,
  ) {
    super(message);
  }
}

/** Opens the piece stream; the socket is torn down if it stalls for `stallMs`. */
export function openPiece(parent: ParentInfo, taskId: string, n: number, stallMs: number, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: parent.ip, port: parent.uploadPort, path: PEER_PATHS.piece(taskId, n), agent, signal },
      (res) => {
        if (res.statusCode === 200) return resolve(res);
        res.resume();
        if (res.statusCode === 429) return reject(new PieceFetchError("busy", `parent ${parent.peerId} is busy`));
        reject(new PieceFetchError("http_error", `parent ${parent.peerId} answered ${res.statusCode} for piece ${n}`));
      },
    );
    req.setTimeout(stallMs, () => req.destroy(new PieceFetchError("timeout", `piece ${n} from ${parent.peerId} stalled for ${stallMs} ms`)));
    req.once("error", (err) => {
      if (err instanceof PieceFetchError) return reject(err);
      reject(new PieceFetchError("unreachable", `parent ${parent.peerId} unreachable: ${describeNetworkError(err)}`));
    });
  });
}
