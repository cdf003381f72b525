/**
 * Manifests by digest are content: fetched through the swarm like blobs (a peer or
 * seed that holds the task serves it, the registry is asked only when none does),
 * and checked against their digest here before any byte of them is answered.
 */
import type { ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import { sha256 } from "../../common/digest.js";
import { KilnError } from "../../common/errors.js";
import { PROXY } from "../../common/defaults.js";
import type { DownloadSpec, OriginAccess } from "../../api/common.js";
import { DRAGONFLY_HEADERS } from "../../api/proxy.js";
import { manifestMediaType } from "../../registry/media-types.js";
import type { ProxyEngine } from "./engine-port.js";

export interface ManifestContent {
  body: Buffer;
  mediaType: string;
  digest: string;
  taskId: string;
  /** Who the registry serves it to, as the peer that fetched it found (null: not known). */
  access: OriginAccess | null;
}

/** The manifest `digest` (sha256) of `spec` from the swarm, verified; throws when it cannot be had or is not that manifest. */
export async function manifestFromSwarm(engine: ProxyEngine, spec: DownloadSpec, digest: string): Promise<ManifestContent> {
  const download = await engine.download(spec);
  await Promise.race([download.task.waitForLayout(), download.done]);
  const length = download.task.meta.contentLength;
  if (length !== null && length > PROXY.manifestMaxBytes) {
    throw new KilnError("BAD_REQUEST", `manifest ${digest} is ${length} bytes, more than a manifest may be (${PROXY.manifestMaxBytes})`, 502);
  }
  await download.done;
  const release = download.task.acquire();
  let body: Buffer;
  try {
    body = await readFile(download.task.contentPath);
  } finally {
    release();
  }
  const actual = sha256(body);
  if (actual !== digest) throw new KilnError("DIGEST_MISMATCH", `manifest ${digest} from the swarm hashes to ${actual}`, 502);
  const mediaType = manifestMediaType(body);
  if (!mediaType) throw new KilnError("BAD_REQUEST", `${digest} is not a manifest document`, 502);
  return { body, mediaType, digest, taskId: download.taskId, access: download.task.meta.access };
}

/** The registry's answer to a manifest GET or HEAD, from verified content; `extra` headers on top (a stale tag's). */
export function sendManifest(res: ServerResponse, method: string, m: ManifestContent, extra: Record<string, string> = {}): void {
  res.writeHead(200, {
    "content-type": m.mediaType,
    "content-length": String(m.body.length),
    "docker-content-digest": m.digest,
    "docker-distribution-api-version": "registry/2.0",
    [DRAGONFLY_HEADERS.taskId]: m.taskId,
    ...extra,
  });
  res.end(method === "HEAD" ? undefined : m.body);
}
