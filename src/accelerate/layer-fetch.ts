/**
 * One layer from the registry (or through a kiln peer's mirror, so the swarm serves
 * it) into a directory: decompressed as it arrives, unpacked, and accepted only when
 * the blob matches its digest and the tarball its diff ID.
 */
import { createHash, type Hash } from "node:crypto";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { KilnError } from "../common/errors.js";
import type { RegistryClient } from "../registry/client.js";
import type { Descriptor } from "../registry/manifest.js";
import { blobUrl, describeRef, type ManifestRef } from "../registry/reference.js";
import { readTar } from "./tar-reader.js";
import { unpackLayer, type UnpackStats } from "./unpack.js";

export interface LayerSource {
  client: RegistryClient;
  ref: ManifestRef;
  /** A kiln peer's proxy (http://127.0.0.1:4001): blobs are fetched through it, naming the registry in X-Dragonfly-Registry. */
  mirror?: string;
}

async function* hashing(src: AsyncIterable<Buffer>, h: Hash): AsyncGenerator<Buffer> {
  for await (const c of src) {
    h.update(c);
    yield c;
  }
}

function decompressor(mediaType: string | undefined): "gzip" | "none" {
  const t = mediaType ?? "";
  if (/zstd/.test(t)) throw new KilnError("UNPROCESSABLE", `zstd-compressed layers (${t}) are not supported yet`);
  if (/gzip/.test(t)) return "gzip";
  if (/\.tar$|tar$/.test(t)) return "none";
  throw new KilnError("UNPROCESSABLE", `unsupported layer media type ${JSON.stringify(t)}`);
}

export async function fetchBlob(src: LayerSource, digest: string): Promise<Response> {
  const url = src.mirror ? `${new URL(src.mirror).origin}/v2/${src.ref.repository}/blobs/${digest}` : blobUrl(src.ref, digest);
  const headers: Record<string, string> = { accept: "*/*", ...(src.mirror ? { "x-dragonfly-registry": src.ref.origin } : {}) };
  const res = await src.client.request("GET", url, headers, src.ref);
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new KilnError(
      "ORIGIN_STATUS",
      `${describeRef(src.ref)}: blob ${digest}${src.mirror ? ` (through ${src.mirror})` : ""}: ${res.status} ${res.statusText}`,
      res.status,
    );
  }
  return res;
}

export async function fetchAndUnpack(src: LayerSource, layer: Descriptor, diffId: string, dir: string, parents: string[]): Promise<UnpackStats> {
  const res = await fetchBlob(src, layer.digest);
  const compressedHash = createHash("sha256");
  const tarHash = createHash("sha256");
  let compressed = 0;
  const counted = async function* (s: AsyncIterable<Buffer>) {
    for await (const c of s) {
      compressed += c.length;
      yield c;
    }
  };
  const raw = Readable.from(hashing(counted(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>)), compressedHash));
  let tarStream: AsyncIterable<Buffer> = raw;
  if (decompressor(layer.mediaType) === "gzip") {
    const gunzip = createGunzip();
    raw.on("error", (e) => gunzip.destroy(e));
    tarStream = raw.pipe(gunzip);
  }
  const tar = hashing(tarStream, tarHash);
  const stats = await unpackLayer(readTar(tar), { dir, parents });
  // The bytes after the tar's end blocks count for both digests.
  for await (const _ of tar) void _;
  for await (const _ of raw) void _;
  const got = `sha256:${compressedHash.digest("hex")}`;
  if (got !== layer.digest || compressed !== layer.size) {
    throw new KilnError("DIGEST_MISMATCH", `layer ${layer.digest}: received ${compressed} bytes with digest ${got}`);
  }
  const gotDiff = `sha256:${tarHash.digest("hex")}`;
  if (gotDiff !== diffId) throw new KilnError("DIGEST_MISMATCH", `layer ${layer.digest}: uncompressed digest ${gotDiff}, the image config says ${diffId}`);
  return stats;
}
