/**
 * What the proxy needs from the peer's download engine, and nothing more: the
 * engine (peer/engine.ts) satisfies it structurally, and tests can drive the proxy's
 * responses with a fake.
 */
import type { DownloadSpec, OriginAccess } from "../../api/common.js";
import type { ByteRange } from "../../common/piece.js";

/** A task on this peer's disk, as the proxy sees it. */
export interface ProxyTask {
  /** Every piece verified and stored (an OCI blob's digest checked too). */
  readonly complete: boolean;
  /** The stored content; complete content is never rewritten in place. */
  readonly contentPath: string;
  /** `access`: who the origin serves the content to; known once the layout is (null: not known). */
  readonly meta: { readonly contentLength: number | null; readonly access: OriginAccess | null };
  /** Verified bytes stored so far (progress of a download). */
  readonly bytesOnDisk: number;
  /** Holds the task from garbage collection until the returned release is called. */
  acquire(): () => void;
  /** Resolves once the content length is known, or the task completes; rejects when it fails. */
  waitForLayout(): Promise<void>;
}

export interface ProxyDownload {
  taskId: string;
  task: ProxyTask;
  /** Settles when every piece is verified and stored. */
  done: Promise<void>;
  /**
   * The content (or `range` of it) in order while it downloads, as ranges of
   * `task.contentPath` that are verified and stored; throws when the download fails.
   */
  ranges(range?: ByteRange): AsyncIterable<ByteRange>;
}

export interface ProxyEngine {
  /** Starts (or joins) the download of `spec`; resolves as soon as it is under way. */
  download(spec: DownloadSpec): Promise<ProxyDownload>;
}
