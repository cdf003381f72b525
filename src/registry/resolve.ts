/** Image manifest URL → the blob URLs to preheat (config and every layer) for one platform. */
import { KilnError } from "../common/errors.js";
import { RegistryClient, type RegistryClientOptions } from "./client.js";
import { DEFAULT_PLATFORM, availablePlatforms, formatPlatform, parseManifest, parsePlatform, pickPlatform, type Descriptor } from "./manifest.js";
import { blobUrl, describeRef, parseManifestUrl } from "./reference.js";

export interface ResolvedImage {
  /** `registry/repo:tag` */
  name: string;
  /** Digest of the platform's image manifest. */
  manifestDigest: string;
  /** Digest of the index the manifest was picked from, if any. */
  indexDigest?: string;
  /** The platform picked from an index (undefined for a single-platform image). */
  platform?: string;
  config: Descriptor & { url: string };
  layers: (Descriptor & { url: string })[];
  /** Config first, then layers in order, without repeats. */
  blobUrls: string[];
  /** Headers a downloader needs for the blobs (the registry's Authorization, plus the caller's). */
  headers: Record<string, string>;
}

export interface ResolveOptions extends RegistryClientOptions {
  /** os/arch[/variant]; default linux/amd64. */
  platform?: string;
}

export async function resolveImage(manifestUrlString: string, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const ref = parseManifestUrl(manifestUrlString);
  const client = new RegistryClient(opts);
  const wanted = parsePlatform(opts.platform || DEFAULT_PLATFORM);
  let fetched = await client.manifest(ref);
  let parsed = parseManifest(fetched.contentType, fetched.body, describeRef(ref));
  let indexDigest: string | undefined;
  let platform: string | undefined;
  // An index may point at another index (rare); follow at most two levels.
  for (let depth = 0; parsed.kind === "index"; depth++) {
    if (depth >= 2) throw new KilnError("BAD_REQUEST", `${describeRef(ref)}: image indexes nested too deeply`);
    indexDigest ??= fetched.digest;
    const entry = pickPlatform(parsed.index, wanted);
    if (!entry) {
      const available = availablePlatforms(parsed.index);
      throw new KilnError(
        "NOT_FOUND",
        `${describeRef(ref)}: platform ${formatPlatform(wanted)} is not in the image index (available: ${available.join(", ") || "none"})`,
      );
    }
    platform = formatPlatform(entry.platform!);
    fetched = await client.manifest(ref, entry.digest);
    if (fetched.digest !== entry.digest) {
      throw new KilnError("DIGEST_MISMATCH", `${describeRef(ref)}: manifest for ${platform} has digest ${fetched.digest}, the index says ${entry.digest}`);
    }
    parsed = parseManifest(fetched.contentType, fetched.body, `${describeRef(ref)} (${platform})`);
  }
  const { manifest } = parsed;
  const withUrl = (d: Descriptor) => ({ ...d, url: blobUrl(ref, d.digest) });
  const config = withUrl(manifest.config);
  const layers = manifest.layers.map(withUrl);
  const headers: Record<string, string> = { ...opts.headers };
  if (client.authorization) {
    for (const k of Object.keys(headers)) if (k.toLowerCase() === "authorization") delete headers[k];
    headers.Authorization = client.authorization;
  }
  return {
    name: describeRef(ref),
    manifestDigest: fetched.digest,
    ...(indexDigest ? { indexDigest } : {}),
    ...(platform ? { platform } : {}),
    config,
    layers,
    blobUrls: [...new Set([config.url, ...layers.map((l) => l.url)])],
    headers,
  };
}
