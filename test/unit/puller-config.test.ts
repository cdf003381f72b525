/**
 * The Image Puller's configuration read as kiln reads it (IMAGES, CACHING_INTERVAL_HOURS,
 * NODE_SELECTOR, the keys it ignores), in each form the seed (openshift-image-puller) and the
 * upstream repositories write it (OpenShift Template, KubernetesImagePuller, CheCluster patch),
 * and node labels as key=value lines.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CreatePullScheduleBody, MAX_PULL_IMAGES, parseImagesList } from "../../src/api/puller.js";
import { scheduleFromImagePuller } from "../../src/cli/puller-config.js";
import { planSchedules, readImagePullerFile } from "../../src/cli/puller-forms.js";
import { labelLines, parseLabelLines } from "../../src/cli/node-location.js";

describe("the Image Puller's configuration", () => {
  it("IMAGES: NAME=IMAGE pairs with spaces and a trailing ';', in order", () => {
    assert.deepEqual(parseImagesList(" java11-maven=quay.io/eclipse/che-java11-maven:nightly ; theia=quay.io/eclipse/che-theia:next;"), [
      { name: "java11-maven", image: "quay.io/eclipse/che-java11-maven:nightly" },
      { name: "theia", image: "quay.io/eclipse/che-theia:next" },
    ]);
    assert.throws(() => parseImagesList("a=b;broken"), /entry 2 \("broken"\) is not NAME=IMAGE/);
    assert.throws(() => parseImagesList("a=has space"), /entry 1 .*must be an image reference/);
  });

  it("IMAGES: the same limit as the array form, and no reference ctr would read as an option", () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => `i${i}=r/x:${i}`).join(";");
    assert.equal(parseImagesList(list(MAX_PULL_IMAGES)).length, MAX_PULL_IMAGES);
    assert.throws(
      () => parseImagesList(list(MAX_PULL_IMAGES + 1)),
      new RegExp(`^Error: at most ${MAX_PULL_IMAGES} images in one schedule \\(${MAX_PULL_IMAGES + 1} given\\)$`),
    );
    assert.throws(() => parseImagesList("a=r/x:1;b=-k"), /^Error: entry 2 \("b=-k"\): image must not start with '-'/);
    const arrayForm = CreatePullScheduleBody.safeParse({
      name: "x",
      images: Array.from({ length: MAX_PULL_IMAGES + 1 }, (_, i) => ({ name: `i${i}`, image: "r/x:1" })),
    });
    assert.equal(arrayForm.error?.issues[0]?.message, `at most ${MAX_PULL_IMAGES} images in one schedule (${MAX_PULL_IMAGES + 1} given)`);
  });

  it("its defaults and the keys kiln has no use for, named with why", () => {
    const s = scheduleFromImagePuller({
      IMAGES: "app=registry:5000/team/app:v1",
      NODE_SELECTOR: "{}",
      CACHING_MEMORY_LIMIT: "20Mi",
      NAMESPACE: "k8s-image-puller",
    });
    assert.deepEqual(s.body, {
      name: "kubernetes-image-puller",
      images: [{ name: "app", image: "registry:5000/team/app:v1" }],
      interval_hours: 1,
      node_selector: {},
    });
    assert.deepEqual(
      s.ignored.map((l) => l.split(":")[0]),
      ["NAMESPACE", "CACHING_MEMORY_LIMIT"],
    );
  });

  it("refuses what would make a schedule that does nothing or the wrong thing, naming the key", () => {
    assert.throws(() => scheduleFromImagePuller({ IMAGES: "{}" }), /IMAGES lists no image/);
    assert.throws(
      () => scheduleFromImagePuller({ IMAGES: "a=r/x:1", CACHING_INTERVAL_HOURS: "often" }),
      /CACHING_INTERVAL_HOURS: "often" is not a positive number/,
    );
    assert.throws(() => scheduleFromImagePuller({ IMAGES: "a=r/x:1", NODE_SELECTOR: "zone=a" }), /NODE_SELECTOR: not JSON/);
    assert.throws(() => scheduleFromImagePuller({ IMAGES: "a=r/x:1", NODE_SELECTOR: '{"bad key!": "x"}' }), /NODE_SELECTOR: must be a label key/);
    assert.deepEqual(scheduleFromImagePuller({ IMAGES: "a=r/x:1", NODE_SELECTOR: '{"zone": "a"}', CACHING_INTERVAL_HOURS: "0.5" }).body.node_selector, {
      zone: "a",
    });
  });
});

/** The shape of che-incubator/kubernetes-image-puller's deploy/openshift templates (seed 3.5.1: oc process -f …). */
const SERVICEACCOUNT_TEMPLATE = `kind: Template
apiVersion: v1
metadata:
  name: kubernetes-image-puller
objects:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata:
    name: create-daemonset
  rules: [{ apiGroups: [apps], resources: [daemonsets], verbs: [create, delete, watch, get] }]
- apiVersion: v1
  kind: ServiceAccount
  metadata:
    name: \${SERVICEACCOUNT_NAME}
parameters:
- name: SERVICEACCOUNT_NAME
  value: k8s-image-puller
`;
const CONFIGMAP_TEMPLATE = `kind: Template
apiVersion: v1
metadata:
  labels:
    app: kubernetes-image-puller
  name: kubernetes-image-puller
objects:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: k8s-image-puller
  type: Opaque
  data:
    IMAGES: \${IMAGES}
    DAEMONSET_NAME: \${DAEMONSET_NAME}
    CACHING_INTERVAL_HOURS: \${CACHING_INTERVAL_HOURS}
    NAMESPACE: \${NAMESPACE}
    CACHING_MEMORY_LIMIT: \${CACHING_MEMORY_LIMIT}
    NODE_SELECTOR: \${NODE_SELECTOR}
parameters:
- name: IMAGES
  value: >
      maven=quay.io/eclipse/che-java11-maven:nightly;
      theia=quay.io/eclipse/che-theia:next;
- name: DAEMONSET_NAME
  value: "kubernetes-image-puller"
- name: CACHING_INTERVAL_HOURS
  value: "1"
- name: NAMESPACE
  value: "k8s-image-puller"
- name: CACHING_MEMORY_LIMIT
  value: "20Mi"
- name: NODE_SELECTOR
  value: "{}"
`;
const APP_TEMPLATE = `kind: Template
apiVersion: template.openshift.io/v1
metadata:
  name: kubernetes-image-puller
objects:
- kind: Deployment
  apiVersion: apps/v1
  metadata:
    name: \${DEPLOYMENT_NAME}
  spec:
    template:
      spec:
        containers:
        - name: kubernetes-image-puller
          image: \${IMAGE}:\${IMAGE_TAG}
parameters:
- name: DEPLOYMENT_NAME
  value: kubernetes-image-puller
- name: IMAGE
  value: registry.redhat.io/devspaces/imagepuller-rhel8
- name: IMAGE_TAG
  value: latest
`;
/** Seed 3.5.5, as written there (with images in place of its __NAME-1__ placeholders). */
const SEED_CUSTOM_RESOURCE = `apiVersion: che.eclipse.org/v1alpha1
kind: KubernetesImagePuller
metadata:
  name: k8s-image-puller-images
  namespace: k8s-image-puller
spec:
  images: "maven=quay.io/eclipse/che-java11-maven:nightly;theia=quay.io/eclipse/che-theia:next"
`;
/** Seed 3.5.4: the --patch of oc patch checluster/devspaces --type=merge, as given there (JSON). */
const SEED_CHECLUSTER_PATCH = `{ "spec": { "components": { "imagePuller": { "enable": true, "spec": { "images": "maven=quay.io/eclipse/che-java11-maven:nightly;theia=quay.io/eclipse/che-theia:next" } } } } }`;
const TWO_IMAGES = [
  { name: "maven", image: "quay.io/eclipse/che-java11-maven:nightly" },
  { name: "theia", image: "quay.io/eclipse/che-theia:next" },
];

describe("the Image Puller's other forms (kiln puller apply -f)", () => {
  it("an OpenShift Template: its parameters fill the ConfigMap, as oc process does; --param overrides one, an undeclared one is refused", () => {
    const { schedules, notes } = planSchedules(readImagePullerFile(CONFIGMAP_TEMPLATE));
    assert.deepEqual(schedules, [{ name: "kubernetes-image-puller", images: TWO_IMAGES, interval_hours: 1, node_selector: {} }]);
    assert.deepEqual(notes, [
      "read ConfigMap k8s-image-puller from Template kubernetes-image-puller",
      "ignored NAMESPACE: there is no DaemonSet to place: peers already run on the nodes",
      "ignored CACHING_MEMORY_LIMIT: no per-image container runs: blobs go into the peers' caches",
    ]);
    const given = planSchedules(readImagePullerFile(CONFIGMAP_TEMPLATE, { IMAGES: "app=registry.example.com/app:v2", CACHING_INTERVAL_HOURS: "6" }));
    assert.deepEqual(given.schedules[0]!.images, [{ name: "app", image: "registry.example.com/app:v2" }]);
    assert.equal(given.schedules[0]!.interval_hours, 6);
    assert.equal(given.notes[0], "read ConfigMap k8s-image-puller from Template kubernetes-image-puller (--param IMAGES, CACHING_INTERVAL_HOURS)");
    assert.throws(() => readImagePullerFile(CONFIGMAP_TEMPLATE, { IMAGE: "x" }), /^Error: --param IMAGE: no Template in the file has such a parameter$/);
    const required = CONFIGMAP_TEMPLATE.replace(/- name: IMAGES\n {2}value: >\n.*\n.*\n/, "- name: IMAGES\n  required: true\n");
    assert.throws(() => readImagePullerFile(required), /document 1: parameter IMAGES is required: give it with --param IMAGES=VALUE/);
  });

  it("several documents: the three templates of the seed's oc process steps in one file; the objects that are not the configuration are named with why", () => {
    const file = [SERVICEACCOUNT_TEMPLATE, CONFIGMAP_TEMPLATE, APP_TEMPLATE].join("---\n");
    const { schedules, notes } = planSchedules(readImagePullerFile(file, { SERVICEACCOUNT_NAME: "puller" }));
    assert.equal(schedules.length, 1);
    assert.deepEqual(notes.slice(0, 3), [
      "ignored Role create-daemonset from Template kubernetes-image-puller (--param SERVICEACCOUNT_NAME): no puller runs in the cluster, so it needs no account or permissions",
      "ignored ServiceAccount puller from Template kubernetes-image-puller (--param SERVICEACCOUNT_NAME): no puller runs in the cluster, so it needs no account or permissions",
      "ignored Deployment kubernetes-image-puller from Template kubernetes-image-puller: no puller Deployment or DaemonSet runs: the manager runs the schedule and the peers pull",
    ]);
    assert.equal(notes[3], "read ConfigMap k8s-image-puller from Template kubernetes-image-puller");
    // What oc process prints (a List) reads the same.
    const processed = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: k8s-image-puller}\n  data: {IMAGES: "a=r/x:1"}\n`;
    assert.equal(planSchedules(readImagePullerFile(processed)).notes[0], "read ConfigMap k8s-image-puller");
    assert.throws(() => readImagePullerFile(APP_TEMPLATE), /no Image Puller configuration: .*\(Deployment kubernetes-image-puller from Template/);
  });

  it("the KubernetesImagePuller custom resource: the operator's field names; its name names the schedule unless daemonsetName does; every other field named with why", () => {
    const seed = planSchedules(readImagePullerFile(SEED_CUSTOM_RESOURCE));
    assert.deepEqual(seed.schedules, [{ name: "k8s-image-puller-images", images: TWO_IMAGES, interval_hours: 1, node_selector: {} }]);
    assert.deepEqual(seed.notes, ["read KubernetesImagePuller k8s-image-puller-images (che.eclipse.org/v1alpha1)"]);
    const full = `apiVersion: che.eclipse.org/v1alpha1
kind: KubernetesImagePuller
metadata:
  name: image-puller
spec:
  daemonsetName: "k8s-image-puller"
  configMapName: k8s-image-puller
  deploymentName: kubernetes-image-puller
  images: "theia=quay.io/eclipse/che-theia:next"
  cachingIntervalHours: "12"
  cachingCPULimit: ".2"
  cachingMemoryRequest: "10Mi"
  nodeSelector: '{"kubernetes.io/os": "linux"}'
  imagePullSecrets: "my-secret"
  imagePullerImage: quay.io/eclipse/kubernetes-image-puller:next
  pullEverything: true
`;
    const { schedules, notes } = planSchedules(readImagePullerFile(full));
    assert.deepEqual(schedules, [{ name: "k8s-image-puller", images: [TWO_IMAGES[1]!], interval_hours: 12, node_selector: { "kubernetes.io/os": "linux" } }]);
    assert.deepEqual(
      notes.map((n) => n.split(":")[0]),
      [
        "read KubernetesImagePuller image-puller (che.eclipse.org/v1alpha1)",
        "ignored spec.configMapName",
        "ignored spec.imagePullerImage",
        "ignored spec.pullEverything",
        "ignored spec.deploymentName",
        "ignored spec.imagePullSecrets",
        "ignored spec.cachingMemoryRequest",
        "ignored spec.cachingCPULimit",
      ],
    );
    assert.match(notes[3]!, /not a field of the KubernetesImagePuller spec/);
    assert.throws(
      () => planSchedules(readImagePullerFile(full.replace('"12"', "often"))),
      /^Error: spec\.cachingIntervalHours: "often" is not a positive number/,
    );
    assert.throws(() => planSchedules(readImagePullerFile(full.replace(/ {2}images: .*\n/, ""))), /^Error: spec\.images lists no image/);
  });

  it("the CheCluster patch: spec.components.imagePuller.spec; without images (seed 3.5.3) or switched off, said why; a whole CheCluster's other fields named", () => {
    const { schedules, notes } = planSchedules(readImagePullerFile(SEED_CHECLUSTER_PATCH));
    assert.deepEqual(schedules, [{ name: "kubernetes-image-puller", images: TWO_IMAGES, interval_hours: 1, node_selector: {} }]);
    assert.deepEqual(notes, ["read CheCluster patch (spec.components.imagePuller)"]);
    assert.throws(
      () => readImagePullerFile(`{ "spec": { "components": { "imagePuller": { "enable": true } } } }`),
      /spec\.components\.imagePuller\.spec\.images is empty: Che then pre-pulls the images its plug-in and devfile registries list, .*external_images\.txt/,
    );
    assert.throws(
      () => readImagePullerFile(`{ "spec": { "components": { "imagePuller": { "enable": false, "spec": { "images": "a=r/x:1" } } } } }`),
      /no Image Puller configuration: .*\(CheCluster patch: spec\.components\.imagePuller\.enable is false, the Image Puller is switched off\)/,
    );
    const cluster = `apiVersion: org.eclipse.che/v2
kind: CheCluster
metadata: {name: devspaces, namespace: openshift-devspaces}
spec:
  devEnvironments: {startTimeoutSeconds: 300}
  components:
    cheServer: {logLevel: INFO}
    imagePuller:
      enable: true
      spec: {images: "a=r/x:1", cachingMemoryLimit: 20Mi}
`;
    assert.deepEqual(planSchedules(readImagePullerFile(cluster)).notes, [
      "read CheCluster devspaces (spec.components.imagePuller)",
      "ignored spec.devEnvironments, spec.components.cheServer: not the Image Puller's configuration",
      "ignored spec.components.imagePuller.spec.cachingMemoryLimit: no per-image container runs: blobs go into the peers' caches",
    ]);
  });

  it("one file, several forms: one schedule each, in order; two that would make one schedule are refused", () => {
    const { schedules } = planSchedules(readImagePullerFile([SEED_CUSTOM_RESOURCE, SEED_CHECLUSTER_PATCH].join("\n---\n")));
    assert.deepEqual(
      schedules.map((s) => s.name),
      ["k8s-image-puller-images", "kubernetes-image-puller"],
    );
    assert.throws(
      () => planSchedules(readImagePullerFile([CONFIGMAP_TEMPLATE, SEED_CHECLUSTER_PATCH].join("---\n"))),
      /^Error: ConfigMap k8s-image-puller from Template kubernetes-image-puller and CheCluster patch \(spec\.components\.imagePuller\) both make the schedule "kubernetes-image-puller"/,
    );
    assert.throws(() => readImagePullerFile("just: a map\n"), /^Error: document 1: not an Image Puller configuration/);
  });
});

describe("node labels as key=value lines", () => {
  it("round-trip; labels the inventory refuses are skipped with the reason; a bad line names its number", () => {
    const { lines, skipped } = labelLines({ zone: "a", "kubernetes.io/arch": "amd64", "bad key": "x", long: "v".repeat(64) });
    assert.deepEqual(lines, ["kubernetes.io/arch=amd64", "zone=a"]);
    assert.equal(skipped.length, 2);
    assert.deepEqual(parseLabelLines(`# from the node\n${lines.join("\n")}\n\n`), { "kubernetes.io/arch": "amd64", zone: "a" });
    assert.throws(() => parseLabelLines("zone=a\nnot a label"), /line 2: not key=value/);
    assert.throws(() => parseLabelLines("zone=a b"), /line 1: zone=a b: must be a label value/);
  });
});
