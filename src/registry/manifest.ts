/** Manifest and index documents (Docker v2 schema 2 and OCI), and platform selection. */
import { z } from "zod";
import { KilnError } from "../common/errors.js";
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES } from "./media-types.js";

export const PlatformSpec = z.object({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
});
export type PlatformSpec = z.infer<typeof PlatformSpec>;

export const Descriptor = z.object({
  mediaType: z.string().optional(),
  digest: z.string().regex(/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-f0-9]{32,}$/),
  size: z.number().int().min(0),
  platform: PlatformSpec.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

export const ImageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

export const ImageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(Descriptor),
});
export type ImageIndex = z.infer<typeof ImageIndex>;

export type ParsedManifest = { kind: "manifest"; manifest: ImageManifest } | { kind: "index"; index: ImageIndex };

/** Classifies by Content-Type, then by the document's own mediaType, then by shape. */
export function parseManifest(contentType: string, body: Buffer, where: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    throw new KilnError("BAD_REQUEST", `${where}: manifest is not JSON`);
  }
  const declared = (json as { mediaType?: unknown })?.mediaType;
  const type = [contentType.split(";")[0]!.trim(), typeof declared === "string" ? declared : ""].find(
    (t) => INDEX_TYPES.includes(t) || MANIFEST_TYPES.includes(t) || t === MEDIA_TYPES.dockerSchema1,
  );
  if (type === MEDIA_TYPES.dockerSchema1 || (json as { schemaVersion?: unknown })?.schemaVersion === 1) {
    throw new KilnError("BAD_REQUEST", `${where}: Docker schema 1 manifests are not supported (push the image again with a current client)`);
  }
  const isIndex = type ? INDEX_TYPES.includes(type) : Array.isArray((json as { manifests?: unknown })?.manifests);
  if (isIndex) {
    const r = ImageIndex.safeParse(json);
    if (!r.success) throw new KilnError("BAD_REQUEST", `${where}: malformed image index: ${r.error.issues[0]?.message ?? ""}`);
    return { kind: "index", index: r.data };
  }
  const r = ImageManifest.safeParse(json);
  if (!r.success) throw new KilnError("BAD_REQUEST", `${where}: malformed image manifest: ${r.error.issues[0]?.message ?? ""}`);
  return { kind: "manifest", manifest: r.data };
}

export const DEFAULT_PLATFORM = "linux/amd64";

/** `linux/arm64/v8` → { os, architecture, variant }. */
export function parsePlatform(s: string): PlatformSpec {
  const [os, architecture, variant] = s.split("/");
  if (!os || !architecture) throw new KilnError("BAD_REQUEST", `platform must be os/arch[/variant], got ${JSON.stringify(s)}`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

export function formatPlatform(p: PlatformSpec): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** arm64 images often omit their (only) variant v8. */
function variantOf(p: PlatformSpec): string | undefined {
  return p.variant ?? (p.architecture === "arm64" ? "v8" : undefined);
}

/**
 * The index entry for `wanted`: same os and architecture; with a wanted variant,
 * the same variant; without, the entry without a variant, else the first match.
 * Attestation entries (platform unknown/unknown) never match.
 */
export function pickPlatform(index: ImageIndex, wanted: PlatformSpec): Descriptor | undefined {
  const candidates = index.manifests.filter((d) => d.platform && d.platform.os === wanted.os && d.platform.architecture === wanted.architecture);
  if (wanted.variant) return candidates.find((d) => variantOf(d.platform!) === variantOf(wanted));
  return candidates.find((d) => !d.platform!.variant) ?? candidates[0];
}

export function availablePlatforms(index: ImageIndex): string[] {
  return index.manifests.filter((d) => d.platform && d.platform.os !== "unknown").map((d) => formatPlatform(d.platform!));
}
