/** OCI and Docker media types kiln understands. */
export const MEDIA_TYPES = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

export const INDEX_TYPES: readonly string[] = [MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.ociIndex];
export const MANIFEST_TYPES: readonly string[] = [MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociManifest];

/** Accept header for a manifest GET: every type kiln can resolve, best first. */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest].join(", ");

/** A manifest document's media type, from its own mediaType field or its shape; undefined when it is not one. */
export function manifestMediaType(body: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const d = doc as { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; layers?: unknown; signatures?: unknown };
  if (typeof d.mediaType === "string" && d.mediaType) return d.mediaType;
  if (d.schemaVersion === 1) return Array.isArray(d.signatures) ? MEDIA_TYPES.dockerSchema1 : "application/vnd.docker.distribution.manifest.v1+json";
  if (Array.isArray(d.manifests)) return MEDIA_TYPES.ociIndex;
  if (Array.isArray(d.layers)) return MEDIA_TYPES.ociManifest;
  return undefined;
}
