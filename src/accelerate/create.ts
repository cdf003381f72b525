/**
 * `create <original> [<target>]`: every layer of the original unpacked once into the
 * shared directory (skipped when already there), then the target manifest — same
 * config and layers, each layer annotated with its chain ID — pushed as the target.
 */
import { randomBytes } from "node:crypto";
import { rename, rm, stat } from "node:fs/promises";
import { z } from "zod";
import type { AcceleratedImage } from "../api/accelerate.js";
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { RegistryClient, type RegistryCredentials } from "../registry/client.js";
import { defaultTargetName, formatImageName, imageRef, parseImageName } from "../registry/image-name.js";
import { parseManifest } from "../registry/manifest.js";
import { ensureBlob, putManifest } from "../registry/push.js";
import { manifestUrl } from "../registry/reference.js";
import { resolveImage } from "../registry/resolve.js";
import { chainIdsOf } from "./chain.js";
import { fetchAndUnpack, fetchBlob, type LayerSource } from "./layer-fetch.js";
import { ACCEL_LABELS, sharedLayout } from "./layout.js";

export interface CreateOptions extends RegistryCredentials {
  original: string;
  target?: string;
  shared: string;
  plainHttp?: boolean;
  mirror?: string;
  platform?: string;
  log: Logger;
}

export interface CreateResult {
  image: AcceleratedImage;
  /** Layers unpacked by this run (the others were already on the shared directory). */
  unpacked: number;
}

const ImageConfig = z.object({ rootfs: z.object({ diff_ids: z.array(z.string()) }) });

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function createAccelerated(o: CreateOptions): Promise<CreateResult> {
  const originalName = parseImageName(o.original);
  const target = o.target ?? defaultTargetName(o.original);
  const targetName = parseImageName(target);
  if (targetName.byDigest) throw new KilnError("BAD_REQUEST", `the target ${target} must be named by tag`);
  const ref = imageRef(originalName, o.plainHttp);
  const targetRef = imageRef(targetName, o.plainHttp);
  const creds = { username: o.username, password: o.password, timeoutMs: 120_000 };
  const resolved = await resolveImage(manifestUrl(ref), { ...creds, platform: o.platform });
  const client = new RegistryClient(creds);
  const src: LayerSource = { client, ref, mirror: o.mirror };

  const fetched = await client.manifest(ref, resolved.manifestDigest);
  const parsed = parseManifest(fetched.contentType, fetched.body, formatImageName(originalName));
  if (parsed.kind !== "manifest") throw new KilnError("UNPROCESSABLE", `${o.original}: expected an image manifest`);
  const configRes = await fetchBlob(src, resolved.config.digest);
  const configBody = Buffer.from(await configRes.arrayBuffer());
  const config = ImageConfig.parse(JSON.parse(configBody.toString("utf8")));
  const layers = parsed.manifest.layers;
  if (config.rootfs.diff_ids.length !== layers.length) {
    throw new KilnError("UNPROCESSABLE", `${o.original}: ${layers.length} layers but ${config.rootfs.diff_ids.length} diff IDs in its config`);
  }
  const chainIds = chainIdsOf(config.rootfs.diff_ids);

  let unpacked = 0;
  for (let i = 0; i < layers.length; i++) {
    const chainId = chainIds[i]!;
    const dir = sharedLayout.layer(o.shared, chainId);
    if (await exists(dir)) {
      o.log.info({ event: "layer-present", chainId, layer: layers[i]!.digest }, "layer already unpacked");
      continue;
    }
    const tmp = sharedLayout.tmpLayer(o.shared, chainId, randomBytes(4).toString("hex"));
    const parents = chainIds
      .slice(0, i)
      .reverse()
      .map((c) => sharedLayout.layer(o.shared, c));
    const t0 = performance.now();
    try {
      const stats = await fetchAndUnpack(src, layers[i]!, config.rootfs.diff_ids[i]!, tmp, parents);
      await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
        // Another builder finished the same layer first: its copy stands.
        if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
        await rm(tmp, { recursive: true, force: true });
      });
      unpacked++;
      o.log.info({ event: "layer-unpacked", chainId, layer: layers[i]!.digest, ...stats, ms: Math.round(performance.now() - t0) }, "layer unpacked");
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  // The target: the original manifest, each layer annotated with the chain ID it is unpacked under.
  const doc = JSON.parse(fetched.body.toString("utf8")) as { layers: { annotations?: Record<string, string> }[] };
  for (const [i, l] of doc.layers.entries()) l.annotations = { ...l.annotations, [ACCEL_LABELS.chainId]: chainIds[i]! };
  for (const blob of [parsed.manifest.config, ...layers]) await ensureBlob(client, ref, targetRef, blob);
  const mediaType = parsed.manifest.mediaType ?? (fetched.contentType.split(";")[0]!.trim() || "application/vnd.oci.image.manifest.v1+json");
  const targetDigest = await putManifest(client, targetRef, mediaType, Buffer.from(JSON.stringify(doc)));
  const size = parsed.manifest.config.size + layers.reduce((n, l) => n + l.size, 0);
  o.log.info({ event: "target-pushed", target: formatImageName(targetName), digest: targetDigest }, "target image pushed");
  return {
    unpacked,
    image: {
      original: formatImageName(originalName),
      target: formatImageName(targetName),
      size,
      chainIds,
      manifestDigest: resolved.manifestDigest,
      targetDigest,
      createdAt: new Date().toISOString(),
    },
  };
}
