/**
 * OCI distribution blob URLs: the one definition that task IDs (keyed by digest),
 * the proxy's default P2P rule and its `Docker-Content-Digest` answer all use.
 */

/** Hex length of each blob digest algorithm kiln recognises (the distribution spec's registered ones). */
export const DIGEST_HEX_LENGTH = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_HEX_LENGTH;

/**
 * Blob digests a download is checked against before it is complete. Only these blobs
 * go through P2P by default and are answered with `Docker-Content-Digest`: a sha512
 * blob is recognised (its task ID is its digest) but not verified.
 */
export const VERIFIED_BLOB_ALGORITHMS: readonly DigestAlgorithm[] = ["sha256"];

/** Everything up to the last `/blobs/`, never a query or fragment: a rule matching a whole URL must not find a blob path in its query. */
const REPOSITORY = "[^?#]+";
const BLOB_PATH = new RegExp(`^/v2/(${REPOSITORY})/blobs/([a-z0-9]+):([a-f0-9]+)$`);

export interface BlobRef {
  /** The repository name, a mirror's namespace prefix included (`docker.io/library/ubuntu`). */
  repository: string;
  algorithm: DigestAlgorithm;
  hex: string;
  /** `<algorithm>:<hex>` */
  digest: string;
}

/** `/v2/<repository>/blobs/<algorithm>:<hex>` → its parts; undefined for anything else (manifests, uploads, a wrong digest length). */
export function parseBlobPath(pathname: string): BlobRef | undefined {
  const m = BLOB_PATH.exec(pathname);
  if (!m) return undefined;
  const [, repository, algorithm, hex] = m as unknown as [string, string, string, string];
  if (!isDigestAlgorithm(algorithm) || DIGEST_HEX_LENGTH[algorithm] !== hex.length) return undefined;
  return { repository, algorithm, hex, digest: `${algorithm}:${hex}` };
}

/** Recognises an OCI distribution blob URL, whatever its host, mirror prefix or query. */
export function parseBlobUrl(url: string | URL): BlobRef | undefined {
  if (typeof url === "string") {
    try {
      url = new URL(url);
    } catch {
      return undefined;
    }
  }
  return parseBlobPath(url.pathname);
}

/** A blob URL whose content kiln checks against its digest (see VERIFIED_BLOB_ALGORITHMS). */
export function isVerifiedBlob(blob: BlobRef | undefined): blob is BlobRef {
  return blob !== undefined && VERIFIED_BLOB_ALGORITHMS.includes(blob.algorithm);
}

/**
 * A regular expression (source text, for proxy rules, which match whole URLs) that
 * matches exactly the URLs `parseBlobUrl` recognises with one of `algorithms`.
 */
export function blobUrlPattern(algorithms: readonly DigestAlgorithm[] = VERIFIED_BLOB_ALGORITHMS): string {
  const digests = algorithms.map((a) => `${a}:[a-f0-9]{${DIGEST_HEX_LENGTH[a]}}`).join("|");
  return `^https?://[^/?#]+/v2/${REPOSITORY}/blobs/(?:${digests})(?:[?#]|$)`;
}

function isDigestAlgorithm(s: string): s is DigestAlgorithm {
  return Object.hasOwn(DIGEST_HEX_LENGTH, s);
}

const MANIFEST_PATH = new RegExp(`^/v2/(${REPOSITORY})/manifests/([^/?#]+)$`);
/** The distribution spec's tag grammar. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** A manifest URL: by digest (content, checked against it) or by tag (a name that may move). */
export type ManifestUrlRef =
  | { repository: string; kind: "digest"; algorithm: DigestAlgorithm; hex: string; digest: string }
  | { repository: string; kind: "tag"; tag: string };

/** `/v2/<repository>/manifests/<tag or digest>` → its parts; undefined for anything else. */
export function parseManifestPath(pathname: string): ManifestUrlRef | undefined {
  const m = MANIFEST_PATH.exec(pathname);
  if (!m) return undefined;
  const [, repository, reference] = m as unknown as [string, string, string];
  const digest = /^([a-z0-9]+):([a-f0-9]+)$/.exec(reference);
  if (digest) {
    const [, algorithm, hex] = digest as unknown as [string, string, string];
    if (!isDigestAlgorithm(algorithm) || DIGEST_HEX_LENGTH[algorithm] !== hex.length) return undefined;
    return { repository, kind: "digest", algorithm, hex, digest: reference };
  }
  return TAG.test(reference) ? { repository, kind: "tag", tag: reference } : undefined;
}

export function parseManifestUrl(url: URL): ManifestUrlRef | undefined {
  return parseManifestPath(url.pathname);
}

/** Like blobUrlPattern, for manifests by digest (content kiln checks against its digest before serving it). */
export function manifestByDigestUrlPattern(algorithms: readonly DigestAlgorithm[] = VERIFIED_BLOB_ALGORITHMS): string {
  const digests = algorithms.map((a) => `${a}:[a-f0-9]{${DIGEST_HEX_LENGTH[a]}}`).join("|");
  return `^https?://[^/?#]+/v2/${REPOSITORY}/manifests/(?:${digests})(?:[?#]|$)`;
}
