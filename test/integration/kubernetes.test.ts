/**
 * deploy/kubernetes: every overlay rendered with `kubectl kustomize` (and production
 * with every optional component), parsed, every object validated against the
 * Kubernetes schema (kubernetes-models) and the key fields checked: kinds, images,
 * ports incl. host port 4001, probes on the health endpoints, volumes, env from
 * Secrets, resources; the two namespaces and their Pod Security levels (every pod of
 * kiln-system passes `restricted`, only the peers run in the privileged kiln-node);
 * nothing cloud-specific outside overlays/cce (selectors, storage classes); no
 * public load balancer; and the example secrets, left empty, stop every daemon with
 * one line (its rendered command run as the pod would run it). The peer's init step
 * is run (paths moved under a temporary root): what it writes is `kiln config`'s own.
 * `kiln config location` reads a node's labels from a (fake) API server.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { AddressInfo } from "node:net";
import { parseAllDocuments } from "yaml";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { KILN_BIN, runKiln, spawnKiln } from "../helpers/proc.js";
import { PORTS } from "../../src/common/defaults.js";
import { MANAGER } from "../../src/manager/defaults.js";
import { DEFAULT_PROXY_RULES, ProxyConfigFile } from "../../src/api/proxy-config.js";
import { REQUIRED_SECRETS } from "../../src/cli/cluster-secret.js";
import { KILN_HOSTS_MARK } from "../../src/cli/containerd-hosts-dir.js";

const run = promisify(execFile);
const DEPLOY = fileURLToPath(new URL("../../deploy/kubernetes", import.meta.url));
const IMAGE = "kiln:0.1.0";
const CONTROL_NS = "kiln-system";
const NODE_NS = "kiln-node";
/** production with every optional component switched on, rendered as a render of its own. */
const ALL_COMPONENTS = "production+components";

// Loose shapes: the test reads what it checks and lets kubernetes-models judge the rest.
type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
};
type Container = {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: any[];
  ports?: any[];
  resources?: any;
  securityContext?: any;
  [k: string]: any;
};
type Render = { objs: Obj[]; stderr: string };

/** Every *.env.example of an overlay becomes its *.env: filled with test values, or left as it is (empty). */
async function writeSecrets(dir: string, fill: boolean): Promise<void> {
  for (const example of (await readdir(dir)).filter((f) => f.endsWith(".env.example"))) {
    const text = await readFile(join(dir, example), "utf8");
    const filled = fill ? text.replace(/^([A-Z_]+)=$/gm, (_, k: string) => `${k}=test-value-of-${k.toLowerCase()}`) : text;
    await writeFile(join(dir, example.replace(/\.example$/, "")), filled);
  }
}

/** Renders an overlay of the copy of deploy/kubernetes at `work`. */
async function render(work: string, overlay: string, fill = true): Promise<Render> {
  const dir = join(work, "overlays", overlay);
  await writeSecrets(dir, fill);
  const { stdout, stderr } = await run("kubectl", ["kustomize", dir], { maxBuffer: 16 * 1024 * 1024 });
  return { objs: parseAllDocuments(stdout).map((d) => d.toJSON() as Obj), stderr };
}

const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} rendered`);
  return o;
};
const workloads = (objs: Obj[]) => objs.filter((o) => ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind));
const podSpec = (o: Obj) => o.spec.template.spec;
const container = (o: Obj, name: string): Container => podSpec(o).containers.find((c: Container) => c.name === name);
const allContainers = (o: Obj): Container[] => [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers];
const envVar = (c: Container, name: string) => c.env?.find((e) => e.name === name);
const port = (c: Container, name: string) => c.ports?.find((p) => p.name === name);

/** An env var taken from a key of a Secret of the container's namespace (whatever hash suffix kustomize gave it). */
function assertFromSecret(c: Container, name: string, objs: Obj[], namespace: string, secret = /^kiln-secrets/): void {
  const ref = envVar(c, name)?.valueFrom?.secretKeyRef;
  assert.ok(ref, `${c.name}: ${name} comes from a Secret`);
  assert.match(ref.name, secret);
  assert.notEqual(ref.optional, true, `${c.name}: ${name} is not optional`);
  const found = objs.find((o) => o.kind === "Secret" && o.metadata.name === ref.name && o.metadata.namespace === namespace);
  assert.ok(found, `${c.name}: the Secret ${ref.name} is in ${namespace}`);
  assert.ok(ref.key in (found.data ?? {}), `the Secret has ${ref.key}`);
}

/** Every object against the Kubernetes OpenAPI schema of its apiVersion and kind. */
async function validate(o: Obj): Promise<void> {
  const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<string, new (x: unknown) => { validate(): void }>;
  const Model = mod[o.kind];
  assert.ok(Model, `kubernetes-models knows ${o.apiVersion} ${o.kind}`);
  assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`);
}

/** Volume types the Pod Security Standards' `restricted` level allows. */
const RESTRICTED_VOLUMES = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

/** What keeps a pod template from the `restricted` Pod Security level (the checks its pods could fail). */
function restrictedViolations(spec: any): string[] {
  const out: string[] = [];
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push("host namespaces");
  for (const v of spec.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== "name");
    if (!type || !RESTRICTED_VOLUMES.includes(type)) out.push(`volume ${v.name}: ${type}`);
  }
  for (const c of [...(spec.initContainers ?? []), ...spec.containers] as Container[]) {
    const ctx = { ...spec.securityContext, ...c.securityContext };
    if (c.securityContext?.privileged) out.push(`${c.name}: privileged`);
    if (c.ports?.some((p) => p.hostPort)) out.push(`${c.name}: host port`);
    if (c.securityContext?.allowPrivilegeEscalation !== false) out.push(`${c.name}: privilege escalation`);
    if (!c.securityContext?.capabilities?.drop?.includes("ALL")) out.push(`${c.name}: capabilities not dropped`);
    if ((c.securityContext?.capabilities?.add ?? []).some((cap: string) => cap !== "NET_BIND_SERVICE")) out.push(`${c.name}: capabilities added`);
    if (ctx.runAsNonRoot !== true || ctx.runAsUser === 0) out.push(`${c.name}: may run as root`);
    if (!["RuntimeDefault", "Localhost"].includes(ctx.seccompProfile?.type)) out.push(`${c.name}: seccomp`);
  }
  return out;
}

/** Node label keys any cluster has, or kiln's own: a selector on anything else is tied to one cloud. */
const PORTABLE_LABEL = /^(kiln\.io\/|kubernetes\.io\/(hostname|os|arch)$|topology\.kubernetes\.io\/)/;

/** The label keys a pod template selects nodes by (nodeSelector and required node affinity). */
function nodeLabelKeys(spec: any): string[] {
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  return [...Object.keys(spec.nodeSelector ?? {}), ...terms.flatMap((t: any) => (t.matchExpressions ?? []).map((e: any) => e.key))];
}

/** A load balancer kept on the private network, by the annotation of some cloud. */
const INTERNAL_LB_ANNOTATION = /internal|intranet|"type":"inner"/i;

/** The env a container would get from the rendered objects (downward API fields given fixed values). */
function containerEnv(c: Container, o: Obj, objs: Obj[]): Record<string, string> {
  const fields: Record<string, string> = { "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1", "metadata.name": "pod-0", "spec.nodeName": "node-a" };
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const from = e.valueFrom;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (from.fieldRef) env[e.name] = fields[from.fieldRef.fieldPath]!;
    else {
      const ref = from.configMapKeyRef ?? from.secretKeyRef;
      const source = find(
        objs.filter((x) => x.metadata.namespace === o.metadata.namespace),
        from.configMapKeyRef ? "ConfigMap" : "Secret",
        ref.name,
      );
      const value = source.data?.[ref.key] ?? "";
      env[e.name] = from.secretKeyRef ? Buffer.from(value, "base64").toString("utf8") : value;
    }
  }
  return env;
}

/** `$(VAR)` in args, as the kubelet expands them. */
const expand = (arg: string, env: Record<string, string>) => arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string) => env[name] ?? all);

/** Moves a script's absolute paths (/host, /run, /var, /etc) under `root` and runs kiln from this checkout. */
const localScript = (script: string, root: string) =>
  script.replaceAll("node /opt/kiln/bin/kiln.mjs", `node ${KILN_BIN}`).replace(/(?<=[\s"'=])\/(host|run|var|etc)\//g, `${root}/$1/`);

/** Runs a main container's command as the pod would (the image's entrypoint is `node /opt/kiln/bin/kiln.mjs`). */
async function runContainer(c: Container, o: Obj, objs: Obj[], root: string): Promise<{ code: number; stderr: string }> {
  const env = { PATH: process.env.PATH!, ...containerEnv(c, o, objs) };
  const [file, args] = c.command
    ? [c.command[0]!, [...c.command.slice(1, -1), localScript(c.command.at(-1)!, root)]]
    : [process.execPath, [KILN_BIN, ...(c.args ?? []).map((a) => expand(a, env))]];
  try {
    await run(file, args, { env, timeout: 30_000 });
    return { code: 0, stderr: "" };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? "" };
  }
}

describe("Kubernetes manifests (kustomize)", () => {
  let skip: string | undefined;
  let work: string;
  let overlays: string[];
  const rendered: Record<string, Render> = {};
  /** Each overlay with its example secrets left empty, as a careless install would apply it. */
  const unfilled: Record<string, Obj[]> = {};

  before(async () => {
    skip = await prerequisitesMissing("Kubernetes manifests", { kubectl: "kubernetes-client" });
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "kiln-k8s-"));
    await cp(DEPLOY, work, { recursive: true, filter: (src) => !/\/[a-z-]+\.env$/.test(src) || src.endsWith("values.env") });
    overlays = (await readdir(join(work, "overlays"), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    // production with every optional component: a sibling overlay whose commented components are switched on.
    await cp(join(work, "overlays/production"), join(work, "overlays", ALL_COMPONENTS), { recursive: true });
    const kustomization = join(work, "overlays", ALL_COMPONENTS, "kustomization.yaml");
    await writeFile(kustomization, (await readFile(kustomization, "utf8")).replace(/^ {2}# - (\.\.\/\.\.\/components\/)/gm, "  - $1"));
    for (const overlay of [...overlays, ALL_COMPONENTS]) rendered[overlay] = await render(work, overlay);
    for (const overlay of overlays) unfilled[overlay] = (await render(work, overlay, false)).objs;
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("renders every overlay without a warning, from kustomize fields that are not deprecated; every object is valid against the Kubernetes schema", async (t) => {
    if (skip) return t.skip(skip);
    assert.deepEqual(overlays.sort(), ["cce", "production", "single-node"]);
    for (const file of [...overlays.map((o) => `overlays/${o}`), "base", ...(await readdir(join(DEPLOY, "components"))).map((c) => `components/${c}`)]) {
      const text = await readFile(join(DEPLOY, file, "kustomization.yaml"), "utf8");
      assert.doesNotMatch(text, /^(bases|patchesStrategicMerge|patchesJson6902|vars):/m, `${file}: no deprecated field`);
      assert.doesNotMatch(text, /^ {4}env:/m, `${file}: generators take envs:, not env:`);
    }
    const allComponents = await readFile(join(work, "overlays", ALL_COMPONENTS, "kustomization.yaml"), "utf8");
    assert.equal(allComponents.match(/^ {2}- \.\.\/\.\.\/components\//gm)?.length, 4, "production offers three optional components besides its own");
    for (const [overlay, { objs, stderr }] of Object.entries(rendered)) {
      assert.equal(stderr, "", `${overlay}: kustomize says nothing`);
      const kinds = new Set(objs.map((o) => o.kind));
      for (const k of [
        "Namespace",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
      ]) {
        assert.ok(kinds.has(k), `${overlay}: ${k} rendered`);
      }
      for (const o of objs) await validate(o);
    }
  });

  it("two namespaces: kiln-system enforces the restricted Pod Security level and every pod there passes it; kiln-node, privileged and saying why, holds the peers only", async (t) => {
    if (skip) return t.skip(skip);
    for (const [overlay, { objs }] of Object.entries(rendered)) {
      const control = find(objs, "Namespace", CONTROL_NS);
      assert.equal(control.metadata.labels?.["pod-security.kubernetes.io/enforce"], "restricted", overlay);
      const node = find(objs, "Namespace", NODE_NS);
      assert.equal(node.metadata.labels?.["pod-security.kubernetes.io/enforce"], "privileged", overlay);
      assert.match(
        node.metadata.annotations?.["kiln.io/why-privileged"] ?? "",
        /hostPath.*host port.*root/s,
        `${overlay}: the reason is written on the namespace`,
      );
      for (const o of objs.filter((x) => x.kind !== "Namespace" && !x.kind.startsWith("Cluster"))) {
        assert.ok([CONTROL_NS, NODE_NS].includes(o.metadata.namespace!), `${overlay}: ${o.kind} ${o.metadata.name} in a kiln namespace`);
      }
      for (const w of workloads(objs)) {
        const violations = restrictedViolations(podSpec(w));
        if (w.metadata.namespace === CONTROL_NS) assert.deepEqual(violations, [], `${overlay}: ${w.metadata.name} passes restricted`);
        else assert.equal(w.metadata.name, "kiln-peer", `${overlay}: only the peer DaemonSet runs in ${NODE_NS}`);
      }
      // The privileged namespace gets the cluster secret, not the manager's sealing key or passwords.
      const nodeSecrets = objs.filter((o) => o.kind === "Secret" && o.metadata.namespace === NODE_NS);
      assert.deepEqual(
        nodeSecrets.flatMap((s) => Object.keys(s.data ?? {})),
        ["KILN_CLUSTER_SECRET"],
        overlay,
      );
      const peer = find(objs, "DaemonSet", "kiln-peer");
      assert.equal(peer.metadata.namespace, NODE_NS);
      const binding = find(objs, "ClusterRoleBinding", "kiln-peer-node-reader") as Obj & { subjects: { namespace: string }[] };
      assert.equal(binding.subjects[0]!.namespace, NODE_NS, `${overlay}: the node reader is the peers' service account`);
    }
  });

  it("every workload: the kiln image, probes on the health endpoints, resources, a locked-down security context", async (t) => {
    if (skip) return t.skip(skip);
    for (const [overlay, { objs }] of Object.entries(rendered)) {
      for (const w of workloads(objs)) {
        const spec = podSpec(w);
        assert.equal(spec.securityContext?.seccompProfile?.type, "RuntimeDefault", `${overlay} ${w.metadata.name}`);
        for (const c of allContainers(w)) {
          const where = `${overlay} ${w.metadata.name}/${c.name}`;
          assert.equal(c.image, IMAGE, where);
          assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${where}: requests and limits`);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, where);
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, where);
          assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], where);
        }
        for (const c of spec.containers as Container[]) {
          // Non-root: the main containers (the pod's context, or the container's).
          const ctx = { ...spec.securityContext, ...c.securityContext };
          assert.equal(ctx.runAsNonRoot, true, `${overlay} ${c.name} runs as non-root`);
          assert.equal(ctx.runAsUser, 1000);
          // The manager is ready only while its database (and Redis) answer; alive while its process answers.
          const readyPath = c.name === "manager" ? "/ready" : "/healthy";
          assert.equal(c.readinessProbe?.httpGet?.path, readyPath, `${overlay} ${c.name}: readiness on ${readyPath}`);
          assert.equal(c.livenessProbe?.httpGet?.path, "/healthy", `${overlay} ${c.name}: liveness on /healthy`);
          for (const probe of [c.readinessProbe, c.livenessProbe]) {
            assert.ok(port(c, probe.httpGet.port), `${overlay} ${c.name}: the probe's port ${probe.httpGet.port} is declared`);
          }
          if (c.name === "manager") {
            assert.ok(
              (c.readinessProbe.timeoutSeconds ?? 1) * 1000 > MANAGER.readinessTimeoutMs,
              `${overlay}: the readiness probe waits longer than /ready's own bound, so a slow database reads as its 503, not a probe timeout`,
            );
          }
        }
      }
    }
  });

  it("manager, scheduler and seed peer: their commands, ports and Services; the secrets from the Secrets of their namespace", async (t) => {
    if (skip) return t.skip(skip);
    for (const { objs } of Object.values(rendered)) {
      const manager = container(find(objs, "Deployment", "kiln-manager"), "manager");
      assert.equal(manager.args?.[0], "manager");
      assert.equal(port(manager, "http").containerPort, PORTS.manager);
      assert.equal(find(objs, "Service", "kiln-manager").spec.ports[0].port, PORTS.manager);
      assertFromSecret(manager, "KILN_CLUSTER_SECRET", objs, CONTROL_NS, /^kiln-cluster-secret/);
      for (const name of ["KILN_SECRET_KEY", "KILN_ROOT_PASSWORD"]) assertFromSecret(manager, name, objs, CONTROL_NS);

      const schedulerSet = find(objs, "StatefulSet", "kiln-scheduler");
      const schedulers = schedulerSet.spec.replicas;
      assert.ok(schedulers === 1 || schedulers === 3, "one scheduler, or production's three");
      const scheduler = container(schedulerSet, "scheduler");
      assert.deepEqual(scheduler.args?.slice(0, 1), ["scheduler"]);
      assert.ok(scheduler.args?.includes("--manager=$(MANAGER_URL)") && scheduler.args.includes("--advertise-ip=$(POD_IP)"));
      assert.equal(port(scheduler, "http").containerPort, PORTS.scheduler);
      assert.equal(find(objs, "Service", "kiln-scheduler").spec.ports[0].port, PORTS.scheduler);
      assertFromSecret(scheduler, "KILN_CLUSTER_SECRET", objs, CONTROL_NS, /^kiln-cluster-secret/);

      const seedSet = find(objs, "StatefulSet", "kiln-seed-peer");
      const seed = container(seedSet, "seed-peer");
      assert.deepEqual(seed.args?.slice(0, 2), ["peer", "--seed"]);
      assert.equal(port(seed, "upload").containerPort, PORTS.peerUpload);
      const claim = seedSet.spec.volumeClaimTemplates.find((v: any) => v.metadata.name === "data");
      assert.ok(claim.spec.resources.requests.storage, "a size for the seed peers' volumes");
      assert.ok(seed.volumeMounts.some((m: any) => m.name === "data" && m.mountPath === "/var/lib/kiln/seed-peer"));
      assert.ok(seed.args?.includes("--data-dir=/var/lib/kiln/seed-peer"));
      assertFromSecret(seed, "KILN_CLUSTER_SECRET", objs, CONTROL_NS, /^kiln-cluster-secret/);
      // The peers, in the other namespace, reach the scheduler by a name that resolves from there.
      const values = find(
        objs.filter((o) => o.metadata.namespace === NODE_NS),
        "ConfigMap",
        envVar(seed, "SCHEDULER_URL").valueFrom.configMapKeyRef.name,
      );
      // Several schedulers: one URL per replica, each the one that pod registers with the manager (--advertise-url), which every task is ranked over.
      const expected =
        schedulers === 1
          ? `http://kiln-scheduler.${CONTROL_NS}:${PORTS.scheduler}`
          : Array.from({ length: schedulers }, (_, i) => `http://kiln-scheduler-${i}.kiln-scheduler-pods.${CONTROL_NS}:${PORTS.scheduler}`).join(",");
      assert.equal(values.data!.SCHEDULER_URL, expected);
      if (schedulers > 1) {
        assert.ok(scheduler.args?.includes(`--advertise-url=http://$(POD_NAME).kiln-scheduler-pods.${CONTROL_NS}:${PORTS.scheduler}`));
        assert.equal(find(objs, "Service", "kiln-scheduler-pods").spec.clusterIP, "None", "the pods' DNS names come from a headless Service");
      }
    }
  });

  it("every daemon runs with --require-secret, and the example secrets left empty stop each one with one line naming what is empty", async (t) => {
    if (skip) return t.skip(skip);
    const examples = await Promise.all(
      overlays.flatMap((o) => ["cluster-secret.env.example", "secrets.env.example"].map((f) => readFile(join(DEPLOY, "overlays", o, f), "utf8"))),
    );
    for (const text of examples) assert.doesNotMatch(text, /^[A-Z_]+=.+$/m, "no example ships a value");
    const root = await mkdtemp(join(tmpdir(), "kiln-pod-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    // What the peer's init step leaves for it.
    await mkdir(join(root, "run/kiln"), { recursive: true });
    await writeFile(join(root, "run/kiln/location"), "\n");
    await writeFile(join(root, "run/kiln/labels"), "");
    const daemonOf = { manager: "manager", scheduler: "scheduler", "seed-peer": "peer", peer: "peer" } as const;
    for (const [overlay, objs] of Object.entries(unfilled)) {
      for (const w of workloads(objs)) {
        for (const c of podSpec(w).containers as Container[]) {
          const where = `${overlay} ${w.metadata.name}/${c.name}`;
          const daemon = daemonOf[c.name as keyof typeof daemonOf];
          assert.ok(daemon, where);
          assert.ok(
            [...(c.args ?? []), ...(c.command ?? [])].some((a) => /(^|\s)--require-secret(\s|$)/.test(a)),
            `${where}: --require-secret`,
          );
          const { code, stderr } = await runContainer(c, w, objs, root);
          const { required, ifPresent } = REQUIRED_SECRETS[daemon];
          const empty = [...required, ...ifPresent.filter((name) => envVar(c, name))];
          assert.equal(code, 2, `${where}: stopped (${stderr})`);
          assert.match(stderr, new RegExp(`^kiln ${daemon}: --require-secret: ${empty.join(", ")} unset or empty: [^\n]+\n$`), `${where}: one line`);
        }
      }
    }
  });

  it("peer DaemonSet: on every node (outside overlays/cce), the proxy on host port 4001, data on a hostPath, the node's name and labels, the proxy rules from a ConfigMap", async (t) => {
    if (skip) return t.skip(skip);
    for (const [overlay, { objs }] of Object.entries(rendered)) {
      const ds = find(objs, "DaemonSet", "kiln-peer");
      assert.deepEqual(podSpec(ds).tolerations, [{ operator: "Exists" }], `${overlay}: the peers tolerate every taint`);
      if (overlay !== "cce") assert.equal(podSpec(ds).nodeSelector, undefined, `${overlay}: a peer on every node`);
      const peer = container(ds, "peer");
      assert.deepEqual(port(peer, "proxy"), { name: "proxy", containerPort: PORTS.peerProxy, hostPort: PORTS.peerProxy });
      assert.equal(port(peer, "upload").containerPort, PORTS.peerUpload);
      const script = peer.command!.join(" ");
      for (const flag of [
        "--proxy-port=4001",
        '--hostname="$NODE_NAME"',
        '--location="$(cat /run/kiln/location)"',
        "--labels-file=/run/kiln/labels",
        "--proxy-config=/etc/kiln/proxy/proxy.yaml",
        "--data-dir=/var/lib/kiln/peer",
      ]) {
        assert.ok(script.includes(flag), `peer started with ${flag}`);
      }
      assert.equal(envVar(peer, "NODE_NAME").valueFrom.fieldRef.fieldPath, "spec.nodeName");
      assertFromSecret(peer, "KILN_CLUSTER_SECRET", objs, NODE_NS, /^kiln-cluster-secret/);
      const volumes = podSpec(ds).volumes as any[];
      assert.equal(volumes.find((v) => v.name === "data").hostPath.path, "/var/lib/kiln");
      const rules = volumes.find((v) => v.name === "proxy-config").configMap.name;
      const cm = find(objs, "ConfigMap", rules);
      // The rules parse as kiln peer --proxy-config reads them.
      const proxyConfig = ProxyConfigFile.parse(parseAllDocuments(cm.data!["proxy.yaml"]!)[0]!.toJSON());
      assert.deepEqual(proxyConfig.rules, DEFAULT_PROXY_RULES, "the default rule of kiln peer");
      // The init step writes under /etc/systemd/system only where a systemd drop-in is the mode (the component).
      const hostMounts = (podSpec(ds).initContainers[0] as Container).volumeMounts.map((m: any) => m.mountPath).filter((p: string) => p.startsWith("/host/"));
      assert.deepEqual(hostMounts, overlay === ALL_COMPONENTS ? ["/host/etc/systemd/system"] : ["/host/etc/containerd/certs.d"], overlay);
      // Reading node labels takes get on nodes, and nothing more.
      const role = find(objs, "ClusterRole", "kiln-peer-node-reader");
      assert.deepEqual((role as Obj & { rules: unknown }).rules, [{ apiGroups: [""], resources: ["nodes"], verbs: ["get"] }]);
      assert.equal(podSpec(ds).serviceAccountName, "kiln-peer");
    }
  });

  it("nothing tied to one cloud outside overlays/cce: node selectors on portable labels, the default storage class; no public load balancer anywhere", async (t) => {
    if (skip) return t.skip(skip);
    for (const [overlay, { objs }] of Object.entries(rendered)) {
      const claims = [
        ...objs.filter((o) => o.kind === "PersistentVolumeClaim").map((o) => o.spec),
        ...objs.filter((o) => o.kind === "StatefulSet").flatMap((o) => o.spec.volumeClaimTemplates?.map((v: any) => v.spec) ?? []),
      ];
      for (const w of workloads(objs)) {
        const keys = nodeLabelKeys(podSpec(w));
        if (overlay === "cce") assert.deepEqual(keys, ["cce.cloud.com/cce-nodepool"], `cce: ${w.metadata.name} on the seed's node pool`);
        else for (const k of keys) assert.match(k, PORTABLE_LABEL, `${overlay}: ${w.metadata.name} selects nodes by ${k}`);
      }
      for (const claim of claims) {
        assert.equal(claim.storageClassName, overlay === "cce" ? "csi-disk" : undefined, `${overlay}: storage class`);
      }
      for (const lb of objs.filter((o) => o.kind === "Service" && o.spec.type === "LoadBalancer")) {
        const annotations = Object.entries(lb.metadata.annotations ?? {}).map(([k, v]) => `${k}: ${v}`);
        assert.ok(
          annotations.some((a) => INTERNAL_LB_ANNOTATION.test(a)),
          `${overlay}: ${lb.metadata.name} is an internal load balancer`,
        );
      }
    }
    const proxyService = (overlay: string) => find(rendered[overlay]!.objs, "Service", "kiln-peer-proxy").spec.type;
    assert.deepEqual(
      [proxyService("production"), proxyService("single-node"), proxyService(ALL_COMPONENTS), proxyService("cce")],
      ["ClusterIP", "ClusterIP", "LoadBalancer", "LoadBalancer"],
    );
    const cceLb = find(rendered.cce!.objs, "Service", "kiln-peer-proxy");
    assert.equal(JSON.parse(cceLb.metadata.annotations!["kubernetes.io/elb.autocreate"]!).type, "inner", "cce: a private network ELB");
    const pooled = workloads(rendered[ALL_COMPONENTS]!.objs).filter((w) => podSpec(w).nodeSelector);
    assert.deepEqual(
      pooled.map((w) => w.metadata.name).sort(),
      ["kiln-manager", "kiln-scheduler", "kiln-seed-peer"],
      "the dedicated pool holds all but the peers",
    );
  });

  it("single-node: the embedded SQLite on a volume, one manager, replaced rather than rolled", async (t) => {
    if (skip) return t.skip(skip);
    const { objs } = rendered["single-node"]!;
    const d = find(objs, "Deployment", "kiln-manager");
    assert.equal(d.spec.replicas, 1);
    assert.equal(d.spec.strategy.type, "Recreate");
    const data = podSpec(d).volumes.find((v: any) => v.name === "data");
    assert.deepEqual(data, { name: "data", persistentVolumeClaim: { claimName: "kiln-manager-data" } });
    find(objs, "PersistentVolumeClaim", "kiln-manager-data");
    const manager = container(d, "manager");
    assert.equal(envVar(manager, "KILN_DATABASE_URL"), undefined, "no external database");
    assert.equal(envVar(manager, "KILN_REDIS_URL"), undefined, "no Redis");
    assert.equal(find(objs, "Service", "kiln-manager").spec.type, "NodePort");
  });

  it("production and cce: 2+ managers on the database and Redis from the Secret, a disruption budget", async (t) => {
    if (skip) return t.skip(skip);
    for (const overlay of ["production", "cce"]) {
      const { objs } = rendered[overlay]!;
      const d = find(objs, "Deployment", "kiln-manager");
      assert.ok(d.spec.replicas >= 2);
      const manager = container(d, "manager");
      assertFromSecret(manager, "KILN_DATABASE_URL", objs, CONTROL_NS);
      assertFromSecret(manager, "KILN_REDIS_URL", objs, CONTROL_NS);
      assert.equal(find(objs, "PodDisruptionBudget", "kiln-manager").spec.minAvailable, 1);
    }
    assert.equal(find(rendered.cce!.objs, "Service", "kiln-manager").spec.type, "NodePort", "the seed's console on a NodePort");
  });

  it("the peer's init step: containerd gets one hosts.toml per registry the proxy allows (no catch-all the proxy would refuse); drop-ins with the systemd component only", async (t) => {
    if (skip) return t.skip(skip);
    const initOf = (overlay: string) => podSpec(find(rendered[overlay]!.objs, "DaemonSet", "kiln-peer")).initContainers[0] as Container;
    const root = await mkdtemp(join(tmpdir(), "kiln-node-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    const runInit = async (overlay: string, nodeConfig: string) => {
      const init = initOf(overlay);
      assert.deepEqual(init.command!.slice(0, 2), ["sh", "-c"]);
      // The init container's mounts, as the pod has them; the proxy config as the ConfigMap holds it.
      await rm(join(root, "host"), { recursive: true, force: true });
      for (const m of init.volumeMounts as { mountPath: string }[]) await mkdir(join(root, m.mountPath), { recursive: true });
      const proxyMap = find(
        rendered[overlay]!.objs,
        "ConfigMap",
        podSpec(find(rendered[overlay]!.objs, "DaemonSet", "kiln-peer")).volumes.find((v: any) => v.name === "proxy-config").configMap.name,
      );
      await writeFile(join(root, "etc/kiln/proxy/proxy.yaml"), proxyMap.data!["proxy.yaml"]!);
      return run("sh", ["-c", localScript(init.command![2]!, root)], {
        env: {
          PATH: process.env.PATH,
          HOST_IP: "10.1.2.3",
          NODE_NAME: "node-a",
          NODE_CONFIG: nodeConfig,
          DIRECT_HOSTS: "localhost,.svc",
          LOCATION_LABELS: "a,b",
        },
      });
    };
    const certs = join(root, "host/etc/containerd/certs.d");
    const peer = "http://10.1.2.3:4001";
    // containerd: what an earlier version wrote (the catch-all) goes; the allowed registry gets its file.
    await mkdir(join(certs, "_default"), { recursive: true });
    await runInit("production", "containerd");
    assert.deepEqual(await readdir(certs), ["registry.example.com"], "one directory per allowed registry");
    const expected = await runKiln(["config", "containerd", "--peer", peer, "--registry", "registry.example.com", "--content-only"]);
    assert.equal(await readFile(join(certs, "registry.example.com/hosts.toml"), "utf8"), `${KILN_HOSTS_MARK}\n${expected.stdout}`);
    // Outside a cluster there is no node to read: no location, and the peer still starts.
    assert.equal(await readFile(join(root, "run/kiln/location"), "utf8"), "\n");
    assert.equal((await stat(join(root, "var/lib/kiln/peer"))).uid, 1000, "the data directory is handed to the peer's user");
    // Docker: its drop-in, with the component that mounts /etc/systemd/system; without it, one line saying what to add.
    await assert.rejects(runInit("production", "docker"), /NODE_CONFIG=docker writes under \S*\/etc\/systemd\/system, which is not mounted: add the component/);
    await runInit(ALL_COMPONENTS, "docker");
    const dropIn = await readFile(join(root, "host/etc/systemd/system/docker.service.d/http-proxy.conf"), "utf8");
    assert.equal(dropIn, (await runKiln(["config", "docker", "--peer", peer, "--direct-hosts", "localhost,.svc", "--content-only"])).stdout);
    assert.match(dropIn, /NO_PROXY=localhost,\.svc/);
    await assert.rejects(
      runInit(ALL_COMPONENTS, "containerd"),
      /NODE_CONFIG=containerd writes under \S*\/etc\/containerd\/certs.d, which is not mounted: drop the component/,
    );
    await assert.rejects(runInit("production", "cri-o"), /NODE_CONFIG must be containerd, containerd-proxy, docker or none, not cri-o/);
  });
});

describe("kiln config location", () => {
  it("prints region|zone from the node's labels, and nothing (with a warning) when the node cannot be read", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-location-"));
    const server = http.createServer((req, res) => {
      if (req.headers.authorization !== "Bearer sa-token") return void res.writeHead(401).end("Unauthorized");
      if (req.url !== "/api/v1/nodes/node-a") return void res.writeHead(403).end('{"message":"nodes is forbidden"}');
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(
          JSON.stringify({ metadata: { name: "node-a", labels: { "topology.kubernetes.io/region": "eu-west", "topology.kubernetes.io/zone": "eu-west-1b" } } }),
        );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    t.after(async () => {
      server.close();
      await rm(dir, { recursive: true, force: true });
    });
    const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await writeFile(join(dir, "token"), "sa-token\n");
    const location = (node: string, extra: string[] = []) =>
      runKiln(["config", "location", "--node", node, "--api-server", api, "--token-file", join(dir, "token"), ...extra]);
    const ok = await location("node-a");
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "eu-west|eu-west-1b\n");
    assert.equal((await location("node-a", ["--labels", "topology.kubernetes.io/region"])).stdout, "eu-west\n");
    const denied = await location("node-b");
    assert.equal(denied.code, 0);
    assert.equal(denied.stdout, "\n");
    assert.match(denied.stderr, /no location for node node-b: GET \/api\/v1\/nodes\/node-b: 403/);
    // The node's labels, for the peer inventory and pull schedules' node selectors.
    const labels = await runKiln(["config", "labels", "--node", "node-a", "--api-server", api, "--token-file", join(dir, "token")]);
    assert.equal(labels.code, 0, labels.stderr);
    assert.equal(labels.stdout, "topology.kubernetes.io/region=eu-west\ntopology.kubernetes.io/zone=eu-west-1b\n");
    const none = await runKiln(["config", "labels", "--node", "node-b", "--api-server", api, "--token-file", join(dir, "token")]);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, "");
    assert.match(none.stderr, /no labels for node node-b: GET \/api\/v1\/nodes\/node-b: 403/);
  });
});

describe("kiln snapshotter --label-node", () => {
  it("labels its node kiln.io/accelerate=true while the shared directory works there, and removes the label when it stops working", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-label-node-"));
    const patches: unknown[] = [];
    const server = http.createServer((req, res) => {
      if (req.headers.authorization !== "Bearer sa-token") return void res.writeHead(401).end("Unauthorized");
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        if (req.method !== "PATCH" || req.url !== "/api/v1/nodes/node-a" || req.headers["content-type"] !== "application/merge-patch+json") {
          return void res.writeHead(400).end("unexpected request");
        }
        patches.push(JSON.parse(body));
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await writeFile(join(dir, "token"), "sa-token\n");
    const shared = join(dir, "shared");
    await mkdir(shared);
    const snap = await spawnKiln([
      "snapshotter",
      "--root",
      join(dir, "root"),
      "--address",
      join(dir, "s.sock"),
      "--shared",
      shared,
      "--node-name",
      "node-a",
      "--label-node",
      "--api-server",
      api,
      "--token-file",
      join(dir, "token"),
    ]);
    t.after(async () => {
      await snap.kill();
      server.close();
      await rm(dir, { recursive: true, force: true });
    });
    const waitFor = async (n: number) => {
      for (const deadline = Date.now() + 20_000; patches.length < n; ) {
        assert.ok(Date.now() < deadline, `only ${patches.length} label patch(es): ${JSON.stringify(patches)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await waitFor(1);
    assert.deepEqual(patches[0], { metadata: { labels: { "kiln.io/accelerate": "true" } } });
    // The shared directory goes away (a file where it was): the next report fails and the label is removed, once.
    await rm(shared, { recursive: true, force: true });
    await writeFile(shared, "not a directory");
    await waitFor(2);
    assert.deepEqual(patches[1], { metadata: { labels: { "kiln.io/accelerate": null } } });
    assert.equal(patches.length, 2, "patched on changes only");
  });
});
