/**
 * The peer proxy's wire (port 4001), shared by the peer and `kiln get`: the
 * X-Dragonfly-* headers it honours, and kiln's own headers and trailer.
 */
import { headerDecode, headerEncode } from "../common/headers.js";

/** Dragonfly's proxy headers (dfdaemon), spelled as Dragonfly's clients send them. */
export const DRAGONFLY_HEADERS = {
  tag: "x-dragonfly-tag",
  application: "x-dragonfly-application",
  filter: "x-dragonfly-filtered-query-params",
  pieceLength: "x-dragonfly-piece-length",
  /** `true` / `false`: the client's choice of P2P or a direct download, over the proxy's rules. */
  useP2P: "x-dragonfly-use-p2p",
  /** Registry mirror: the upstream a `/v2/...` request is for. */
  registry: "x-dragonfly-registry",
  /** Response: the task the content belongs to. */
  taskId: "x-dragonfly-task-id",
} as const;

/** kiln's own proxy headers. None of them is forwarded to an origin (common/headers.ts). */
export const KILN_PROXY_HEADERS = {
  /** Trailer (asked for with `TE: trailers`): whether the body was complete and verified; see encodeResult. */
  result: "x-kiln-result",
  /** The body's length when the answer is chunked (with trailers), so a client can still show progress. */
  contentLength: "x-kiln-content-length",
} as const;

/** How a transfer ended, as the result trailer carries it. */
export type TransferResult = { ok: true } | { ok: false; message: string };

const RESULT_OK = "ok";
const RESULT_ERROR = "error: ";

export function encodeResult(result: TransferResult): string {
  return result.ok ? RESULT_OK : RESULT_ERROR + headerEncode(result.message);
}

/** The result trailer's value; a missing one means the peer went away before the end. */
export function decodeResult(value: string | undefined): TransferResult {
  if (value === RESULT_OK) return { ok: true };
  if (value?.startsWith(RESULT_ERROR)) return { ok: false, message: headerDecode(value.slice(RESULT_ERROR.length)) };
  return { ok: false, message: "the peer closed the stream before the end" };
}
