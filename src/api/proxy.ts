/**
 * The peer proxy's wire (port 4001), shared by the peer and `kiln get`: the
 * X-Dragonfly-* headers it honours, kiln's own headers and trailer, and the
 * messages of a local copy.
 */
// zod/mini: `kiln get` reads these messages, and the full zod was most of its start-up CPU.
import * as z from "zod/mini";
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
  /**
   * Request, `1`: the client runs on the peer's host and wants the stored file's path
   * instead of the bytes (answered with LOCAL_COPY_CONTENT_TYPE, to loopback clients only).
   */
  localCopy: "x-kiln-local-copy",
  /**
   * Response: the registry failed and this manifest answer comes from what the peer
   * remembered of a tag: `age=<seconds>; reason="<how the registry failed>"`.
   */
  stale: "x-kiln-stale",
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

/** The content type of a local-copy answer: one LocalCopyMessage per line. */
export const LOCAL_COPY_CONTENT_TYPE = "application/vnd.kiln.local-copy.v1+jsonl";

/**
 * A local-copy answer's body: `progress` while the task downloads, then either `ready`
 * (the stored content's path, and its identity, so a client in another mount namespace
 * that sees another file there does not copy it) or `error`. After `ready` the peer keeps
 * the task pinned until the client closes the connection.
 */
export const LocalCopyMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("progress"), bytes: z.int().check(z.nonnegative()) }),
  z.object({
    type: z.literal("ready"),
    path: z.string().check(z.minLength(1)),
    size: z.int().check(z.nonnegative()),
    /** stat's dev and ino, as decimal strings (they can exceed 2^53). */
    dev: z.string().check(z.regex(/^\d+$/)),
    ino: z.string().check(z.regex(/^\d+$/)),
  }),
  z.object({ type: z.literal("error"), message: z.string() }),
]);
export type LocalCopyMessage = z.infer<typeof LocalCopyMessage>;

export function encodeLocalCopyMessage(message: LocalCopyMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/** One line of a local-copy answer; undefined when it is not a message of this version. */
export function decodeLocalCopyMessage(line: string): LocalCopyMessage | undefined {
  try {
    const parsed = LocalCopyMessage.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
