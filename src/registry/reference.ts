/** Manifest and blob URLs of the OCI distribution API. */
import { KilnError } from "../common/errors.js";

export interface ManifestRef {
  /** `https://registry.example.com` (scheme, host and port). */
  origin: string;
  /** `library/alpine` */
  repository: string;
  /** A tag or a digest. */
  reference: string;
  /** Query string of the original URL, kept on every URL derived from it ("" or "?…"). */
  search: string;
}

const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** `https://<registry>/v2/<repo>/manifests/<ref>` → its parts; anything else is a BAD_REQUEST naming the problem. */
export function parseManifestUrl(raw: string): ManifestRef {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new KilnError("BAD_REQUEST", `not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new KilnError("BAD_REQUEST", `image URL must be http(s): ${raw}`);
  const m = MANIFEST_PATH.exec(url.pathname);
  if (!m) throw new KilnError("BAD_REQUEST", `not an image manifest URL (https://<registry>/v2/<repository>/manifests/<tag or digest>): ${raw}`);
  const repository = decodeURIComponent(m[1]!);
  const reference = decodeURIComponent(m[2]!);
  if (!REPOSITORY.test(repository)) throw new KilnError("BAD_REQUEST", `invalid repository name ${JSON.stringify(repository)} in ${raw}`);
  if (!TAG.test(reference) && !DIGEST.test(reference)) throw new KilnError("BAD_REQUEST", `invalid tag or digest ${JSON.stringify(reference)} in ${raw}`);
  return { origin: url.origin, repository, reference, search: url.search };
}

export function isDigest(reference: string): boolean {
  return reference.includes(":");
}

export function manifestUrl(ref: ManifestRef, reference = ref.reference): string {
  return `${ref.origin}/v2/${ref.repository}/manifests/${reference}${ref.search}`;
}

export function blobUrl(ref: ManifestRef, digest: string): string {
  return `${ref.origin}/v2/${ref.repository}/blobs/${digest}`;
}

export function describeRef(ref: ManifestRef): string {
  const host = new URL(ref.origin).host;
  return `${host}/${ref.repository}${isDigest(ref.reference) ? "@" : ":"}${ref.reference}`;
}
