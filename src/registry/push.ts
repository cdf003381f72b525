/**
 * What a push of an image manifest needs: its blobs present in the target repository
 * (already there, mounted from the source repository of the same registry, or
 * copied), then the manifest PUT under its tag.
 */
import { KilnError } from "../common/errors.js";
import { sha256 } from "../common/digest.js";
import type { RegistryClient } from "./client.js";
import { blobUrl, describeRef, manifestUrl, type ManifestRef } from "./reference.js";

export interface BlobRef {
  digest: string;
  size: number;
}

async function ok(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  const text = await res.text().catch(() => "");
  throw new KilnError("ORIGIN_STATUS", `${what}: registry answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ""}`, res.status);
}

/** Makes `blob` present in `target`'s repository. */
export async function ensureBlob(client: RegistryClient, source: ManifestRef, target: ManifestRef, blob: BlobRef): Promise<"present" | "mounted" | "copied"> {
  const head = await client.request("HEAD", blobUrl(target, blob.digest), {}, target);
  if (head.ok) return "present";
  const uploads = `${target.origin}/v2/${target.repository}/blobs/uploads/`;
  const what = `${describeRef(target)}: blob ${blob.digest}`;
  if (source.origin === target.origin) {
    const mount = await client.request("POST", `${uploads}?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(source.repository)}`, {}, target);
    if (mount.status === 201) return "mounted";
    await mount.body?.cancel();
  }
  // Copy: read it from the source, checked against its digest, then a monolithic upload.
  const got = await ok(await client.get(blobUrl(source, blob.digest), "*/*", source), `${describeRef(source)}: blob ${blob.digest}`);
  const data = Buffer.from(await got.arrayBuffer());
  if (sha256(data) !== blob.digest) throw new KilnError("DIGEST_MISMATCH", `${what}: content does not match its digest`);
  const start = await ok(await client.request("POST", uploads, {}, target), `${what} (upload)`);
  const location = new URL(start.headers.get("location") ?? "", uploads);
  location.searchParams.set("digest", blob.digest);
  await ok(await client.request("PUT", location.toString(), { "content-type": "application/octet-stream" }, target, data), `${what} (upload)`);
  return "copied";
}

/** PUTs the manifest under `target.reference`; answers its digest. */
export async function putManifest(client: RegistryClient, target: ManifestRef, mediaType: string, body: Buffer): Promise<string> {
  const res = await ok(await client.request("PUT", manifestUrl(target), { "content-type": mediaType }, target, body), `${describeRef(target)}: manifest push`);
  const digest = sha256(body);
  const announced = res.headers.get("docker-content-digest");
  if (announced && announced !== digest) throw new KilnError("DIGEST_MISMATCH", `${describeRef(target)}: registry stored ${announced}, pushed ${digest}`);
  return digest;
}
