/**
 * The Kubernetes Image Puller's configuration (its ConfigMap keys, the same names as
 * environment variables, or the fields of the other forms mapped to them by
 * puller-forms.ts) → a kiln pull schedule. What has no meaning for kiln (per-image
 * container resources, DaemonSet placement) is accepted and named as ignored.
 */
import { Labels } from "../api/peers.js";
import { parseImagesList, type CreatePullScheduleBody } from "../api/puller.js";

/** The keys the Image Puller reads; every other key of a ConfigMap is left alone. */
export const IMAGE_PULLER_KEYS = [
  "IMAGES",
  "CACHING_INTERVAL_HOURS",
  "NODE_SELECTOR",
  "DAEMONSET_NAME",
  "DEPLOYMENT_NAME",
  "NAMESPACE",
  "AFFINITY",
  "TOLERATIONS",
  "IMAGE_PULL_SECRETS",
  "CACHING_MEMORY_REQUEST",
  "CACHING_MEMORY_LIMIT",
  "CACHING_CPU_REQUEST",
  "CACHING_CPU_LIMIT",
] as const;
export type ImagePullerKey = (typeof IMAGE_PULLER_KEYS)[number];
export type ImagePullerVars = Partial<Record<ImagePullerKey, string>>;

/** The schedule's name when the configuration names no DaemonSet (the Image Puller's own default). */
export const DEFAULT_PULLER_NAME = "kubernetes-image-puller";

/** Why each key kiln does not use needs nothing from it. */
export const IGNORED_KEYS: Partial<Record<ImagePullerKey, string>> = {
  DEPLOYMENT_NAME: "there is no puller Deployment: the manager runs the schedule",
  NAMESPACE: "there is no DaemonSet to place: peers already run on the nodes",
  AFFINITY: "nodes are picked by NODE_SELECTOR over the labels peers report",
  TOLERATIONS: "nodes are picked by NODE_SELECTOR over the labels peers report",
  IMAGE_PULL_SECRETS: "give registry credentials with --username and --password (KILN_REGISTRY_PASSWORD); they are stored sealed",
  CACHING_MEMORY_REQUEST: "no per-image container runs: blobs go into the peers' caches",
  CACHING_MEMORY_LIMIT: "no per-image container runs: blobs go into the peers' caches",
  CACHING_CPU_REQUEST: "no per-image container runs: blobs go into the peers' caches",
  CACHING_CPU_LIMIT: "no per-image container runs: blobs go into the peers' caches",
};

export interface ImagePullerSchedule {
  body: CreatePullScheduleBody;
  /** `KEY: why` for each key given that kiln does not use. */
  ignored: string[];
}

export interface ImagePullerReadOptions {
  /** How the form names each key in messages (a custom resource's `spec.images` for IMAGES); default the key. */
  names?: Partial<Record<ImagePullerKey, string>>;
  /** The schedule's name when no DAEMONSET_NAME is given. */
  defaultName?: string;
}

/** Throws with the key that is wrong, as the form names it. */
export function scheduleFromImagePuller(vars: ImagePullerVars, opts: ImagePullerReadOptions = {}): ImagePullerSchedule {
  const named = (key: ImagePullerKey) => opts.names?.[key] ?? key;
  const images = vars.IMAGES?.trim() ?? "";
  let list: CreatePullScheduleBody["images"];
  try {
    // The Image Puller's template default is "{}": no image.
    list = images === "{}" ? [] : parseImagesList(images);
  } catch (err) {
    throw new Error(`${named("IMAGES")}: ${(err as Error).message}`);
  }
  if (list.length === 0) throw new Error(`${named("IMAGES")} lists no image (NAME-1=IMAGE-1;NAME-2=IMAGE-2)`);
  const hoursText = vars.CACHING_INTERVAL_HOURS?.trim();
  const hours = hoursText ? Number(hoursText) : 1;
  if (!Number.isFinite(hours) || hours <= 0)
    throw new Error(`${named("CACHING_INTERVAL_HOURS")}: ${JSON.stringify(hoursText)} is not a positive number of hours`);
  let selector: Labels = {};
  const selectorText = vars.NODE_SELECTOR?.trim();
  if (selectorText) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(selectorText);
    } catch {
      throw new Error(`${named("NODE_SELECTOR")}: not JSON (a map like {"zone": "a"}): ${selectorText}`);
    }
    const labels = Labels.safeParse(parsed);
    if (!labels.success) throw new Error(`${named("NODE_SELECTOR")}: ${labels.error.issues[0]?.message ?? "must be a map of label to value"}`);
    selector = labels.data;
  }
  const ignored = (Object.entries(IGNORED_KEYS) as [ImagePullerKey, string][])
    .filter(([k]) => vars[k] !== undefined && vars[k] !== "")
    .map(([k, why]) => `${named(k)}: ${why}`);
  return {
    body: {
      name: vars.DAEMONSET_NAME?.trim() || opts.defaultName || DEFAULT_PULLER_NAME,
      images: list,
      interval_hours: hours,
      node_selector: selector,
    },
    ignored,
  };
}
