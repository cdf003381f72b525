/**
 * Every form the Image Puller's configuration is written in (seed: openshift-image-puller),
 * read from one file of one or more YAML documents:
 * - its ConfigMap (`data:` with IMAGES, ...);
 * - an OpenShift Template (`kind: Template`) whose `parameters` fill `${IMAGES}` and the
 *   others in its objects, as `oc process -f configmap.yaml [-p NAME=VALUE]` does; a
 *   `kind: List` (what `oc process` prints);
 * - the operator's KubernetesImagePuller custom resource (che.eclipse.org/v1alpha1; field
 *   names of kubernetes-image-puller-operator's api/v1alpha1/kubernetesimagepuller_types.go);
 * - the CheCluster patch (`spec.components.imagePuller`), or a whole CheCluster.
 * Each configuration found becomes one schedule; every other document, and every field
 * kiln has no use for, is named with why.
 */
import { parse as parseYaml, parseAllDocuments } from "yaml";
import type { CreatePullScheduleBody } from "../api/puller.js";
import { IMAGE_PULLER_KEYS, type ImagePullerKey, type ImagePullerReadOptions, type ImagePullerVars, scheduleFromImagePuller } from "./puller-config.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface ImagePullerConfig {
  /** Which form was read, e.g. `ConfigMap k8s-image-puller from Template kubernetes-image-puller`. */
  form: string;
  vars: ImagePullerVars;
  options: ImagePullerReadOptions;
  /** `field: why` for the form's own fields kiln has no use for (the Image Puller's keys are judged later). */
  ignored: string[];
}

export interface ImagePullerFile {
  configs: ImagePullerConfig[];
  /** `what: why` for each document that holds no configuration. */
  ignored: string[];
}

/** The KubernetesImagePuller spec's fields (json names) and the Image Puller key each one sets. */
const PULLER_SPEC_FIELDS: Record<string, ImagePullerKey> = {
  images: "IMAGES",
  cachingIntervalHours: "CACHING_INTERVAL_HOURS",
  nodeSelector: "NODE_SELECTOR",
  daemonsetName: "DAEMONSET_NAME",
  deploymentName: "DEPLOYMENT_NAME",
  imagePullSecrets: "IMAGE_PULL_SECRETS",
  affinity: "AFFINITY",
  tolerations: "TOLERATIONS",
  cachingMemoryRequest: "CACHING_MEMORY_REQUEST",
  cachingMemoryLimit: "CACHING_MEMORY_LIMIT",
  cachingCPURequest: "CACHING_CPU_REQUEST",
  cachingCPULimit: "CACHING_CPU_LIMIT",
};

/** The spec's fields that set no Image Puller key, and why kiln needs none of them. */
const PULLER_SPEC_ONLY: Record<string, string> = {
  configMapName: "there is no ConfigMap to write: the manager keeps the schedule",
  imagePullerImage: "no puller image runs: the peers pull",
};

/** Why a document of another kind holds nothing for kiln. */
function whyNotConfig(kind: string): string {
  if (["Deployment", "DaemonSet", "Pod"].includes(kind)) return "no puller Deployment or DaemonSet runs: the manager runs the schedule and the peers pull";
  if (["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"].includes(kind))
    return "no puller runs in the cluster, so it needs no account or permissions";
  if (kind === "Namespace") return "there is no DaemonSet to place: peers already run on the nodes";
  return "not part of the Image Puller's configuration";
}

const isObject = (v: Json | undefined): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);
const text = (v: Json | undefined): string | undefined => (v === undefined || v === null ? undefined : typeof v === "string" ? v : JSON.stringify(v));
const nameOf = (doc: JsonObject): string | undefined => (isObject(doc.metadata) ? text(doc.metadata.name) : undefined);

/** A KubernetesImagePuller spec (the custom resource's, or the CheCluster's) → the Image Puller's keys. */
function fromPullerSpec(spec: JsonObject, prefix: string): Pick<ImagePullerConfig, "vars" | "ignored"> & { names: ImagePullerReadOptions["names"] } {
  const vars: ImagePullerVars = {};
  const names: Partial<Record<ImagePullerKey, string>> = {};
  const ignored: string[] = [];
  for (const [field, value] of Object.entries(spec)) {
    const key = PULLER_SPEC_FIELDS[field];
    if (key) {
      vars[key] = text(value);
      names[key] = `${prefix}.${field}`;
    } else {
      ignored.push(`${prefix}.${field}: ${PULLER_SPEC_ONLY[field] ?? "not a field of the KubernetesImagePuller spec (che.eclipse.org/v1alpha1)"}`);
    }
  }
  // Messages name every key as this form would, set or not.
  for (const [field, key] of Object.entries(PULLER_SPEC_FIELDS)) names[key] ??= `${prefix}.${field}`;
  return { vars, ignored, names };
}

/** `oc process`: the template's parameters (values, or `params` over them) substituted into its objects. */
function processTemplate(template: JsonObject, where: string, params: Record<string, string>, used: Set<string>): { objects: Json[]; note: string } {
  const values = new Map<string, string>();
  const fromFlags: string[] = [];
  for (const p of Array.isArray(template.parameters) ? template.parameters : []) {
    if (!isObject(p) || typeof p.name !== "string") throw new Error(`${where}: a parameter without a name`);
    let value = text(p.value);
    if (Object.hasOwn(params, p.name)) {
      value = params[p.name];
      used.add(p.name);
      fromFlags.push(p.name);
    }
    if (value === undefined && p.generate)
      throw new Error(`${where}: parameter ${p.name} is generated (${text(p.from)}): give it with --param ${p.name}=VALUE`);
    if (value === undefined && p.required === true) throw new Error(`${where}: parameter ${p.name} is required: give it with --param ${p.name}=VALUE`);
    values.set(p.name, value ?? "");
  }
  const substitute = (v: Json): Json => {
    if (typeof v === "string") {
      // ${{NAME}} as a whole value: the parameter's value as YAML (a number, a map); ${NAME}: text.
      const whole = /^\$\{\{([A-Za-z0-9_]+)\}\}$/.exec(v);
      if (whole && values.has(whole[1]!)) return parseYaml(values.get(whole[1]!)!) as Json;
      return v.replace(/\$\{([A-Za-z0-9_]+)\}/g, (all, name: string) => values.get(name) ?? all);
    }
    if (Array.isArray(v)) return v.map(substitute);
    if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x)]));
    return v;
  };
  const note = fromFlags.length ? ` (--param ${fromFlags.join(", ")})` : "";
  return { objects: (Array.isArray(template.objects) ? template.objects : []).map(substitute), note };
}

function readDocument(doc: Json, where: string, from: string, out: ImagePullerFile, params: Record<string, string>, used: Set<string>): void {
  if (!isObject(doc)) throw new Error(`${where}: not a YAML mapping`);
  const kind = text(doc.kind);
  const name = nameOf(doc) ?? "(no name)";
  const spec = isObject(doc.spec) ? doc.spec : undefined;
  const components = spec && isObject(spec.components) ? spec.components : undefined;
  if (kind === "Template") {
    const { objects, note } = processTemplate(doc, where, params, used);
    for (const [i, o] of objects.entries()) readDocument(o, `${where}, object ${i + 1}`, ` from Template ${name}${note}`, out, params, used);
  } else if (kind === "List") {
    for (const [i, o] of (Array.isArray(doc.items) ? doc.items : []).entries()) readDocument(o, `${where}, item ${i + 1}`, from, out, params, used);
  } else if (kind === "ConfigMap") {
    const data = isObject(doc.data) ? doc.data : {};
    const vars: ImagePullerVars = {};
    for (const key of IMAGE_PULLER_KEYS) if (key in data) vars[key] = text(data[key]);
    if (!Object.keys(vars).length) out.ignored.push(`ConfigMap ${name}${from}: none of the Image Puller's keys (IMAGES, ...)`);
    else out.configs.push({ form: `ConfigMap ${name}${from}`, vars, options: {}, ignored: [] });
  } else if (kind === "KubernetesImagePuller") {
    const read = fromPullerSpec(spec ?? {}, "spec");
    out.configs.push({
      form: `KubernetesImagePuller ${name} (${text(doc.apiVersion) ?? "no apiVersion"})${from}`,
      vars: read.vars,
      // Two custom resources are two pullers: each is its own schedule unless it names its DaemonSet.
      options: { names: read.names, ...(nameOf(doc) ? { defaultName: nameOf(doc) } : {}) },
      ignored: read.ignored,
    });
  } else if (kind === "CheCluster" || (kind === undefined && components && "imagePuller" in components)) {
    readCheCluster(doc, kind === undefined ? "CheCluster patch" : `CheCluster ${name}`, from, out);
  } else if (kind) {
    out.ignored.push(`${kind} ${name}${from}: ${whyNotConfig(kind)}`);
  } else {
    throw new Error(`${where}: not an Image Puller configuration (a ConfigMap, a Template of one, a KubernetesImagePuller, a CheCluster patch)`);
  }
}

/** `spec.components.imagePuller` of a CheCluster (or of the patch `oc patch checluster` is given). */
function readCheCluster(doc: JsonObject, form: string, from: string, out: ImagePullerFile): void {
  const spec = isObject(doc.spec) ? doc.spec : {};
  const components = isObject(spec.components) ? spec.components : {};
  const puller = components.imagePuller;
  const prefix = "spec.components.imagePuller";
  if (!isObject(puller)) return void out.ignored.push(`${form}${from}: no ${prefix}`);
  if (puller.enable === false) return void out.ignored.push(`${form}${from}: ${prefix}.enable is false, the Image Puller is switched off`);
  const pullerSpec = isObject(puller.spec) ? puller.spec : {};
  if (!text(pullerSpec.images)?.trim()) {
    throw new Error(
      `${form}${from}: ${prefix}.spec.images is empty: Che then pre-pulls the images its plug-in and devfile registries list, which kiln cannot ask for; ` +
        "list them (https://<che>/plugin-registry/v3/external_images.txt, https://<che>/devfile-registry/devfiles/external_images.txt)",
    );
  }
  const read = fromPullerSpec(pullerSpec, `${prefix}.spec`);
  const others = [
    ...Object.keys(spec)
      .filter((k) => k !== "components")
      .map((k) => `spec.${k}`),
    ...Object.keys(components)
      .filter((k) => k !== "imagePuller")
      .map((k) => `spec.components.${k}`),
    ...Object.keys(puller)
      .filter((k) => k !== "enable" && k !== "spec")
      .map((k) => `${prefix}.${k}`),
  ];
  out.configs.push({
    form: `${form} (${prefix})${from}`,
    vars: read.vars,
    options: { names: read.names },
    ignored: [...read.ignored, ...(others.length ? [`${others.join(", ")}: not the Image Puller's configuration`] : [])],
  });
}

/**
 * Every Image Puller configuration in `source` (one or more YAML documents). `params`:
 * Template parameters given on the command line (`oc process -p NAME=VALUE`). Throws
 * naming the document, the parameter or the field that is wrong.
 */
export function readImagePullerFile(source: string, params: Record<string, string> = {}): ImagePullerFile {
  const out: ImagePullerFile = { configs: [], ignored: [] };
  const used = new Set<string>();
  parseAllDocuments(source).forEach((doc, i) => {
    if (doc.errors.length) throw new Error(`document ${i + 1}: ${doc.errors[0]!.message}`);
    const value = doc.toJSON() as Json;
    if (value !== null) readDocument(value, `document ${i + 1}`, "", out, params, used);
  });
  const unknown = Object.keys(params).filter((p) => !used.has(p));
  if (unknown.length) throw new Error(`--param ${unknown.join(", ")}: no Template in the file has such a parameter`);
  if (!out.configs.length) {
    const why = out.ignored.length ? ` (${out.ignored.join("; ")})` : "";
    throw new Error(`no Image Puller configuration: a ConfigMap with IMAGES, a Template of one, a KubernetesImagePuller or a CheCluster patch${why}`);
  }
  return out;
}

/**
 * One schedule per configuration, and the lines that say which form was read and what was
 * ignored and why, in file order. Two configurations making one schedule are refused.
 */
export function planSchedules(read: ImagePullerFile): { schedules: CreatePullScheduleBody[]; notes: string[] } {
  const notes = read.ignored.map((line) => `ignored ${line}`);
  const byName = new Map<string, { body: CreatePullScheduleBody; form: string }>();
  for (const config of read.configs) {
    notes.push(`read ${config.form}`);
    const { body, ignored } = scheduleFromImagePuller(config.vars, config.options);
    notes.push(...[...config.ignored, ...ignored].map((line) => `ignored ${line}`));
    const twin = byName.get(body.name);
    if (twin) throw new Error(`${twin.form} and ${config.form} both make the schedule "${body.name}": give each its own DaemonSet name`);
    byName.set(body.name, { body, form: config.form });
  }
  return { schedules: [...byName.values()].map((b) => b.body), notes };
}
