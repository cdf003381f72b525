/**
 * deploy/kubernetes: both overlays rendered with `kubectl kustomize`, parsed, their
 * key fields checked (kinds, images, ports incl. host port 4001, probes on the
 * health endpoints, volumes, env from Secrets, resources, security contexts) and
 * every object validated against the Kubernetes schema (kubernetes-models). The
 * peer's init step is run (paths moved under a temporary root): the node
 * configuration it writes is `kiln config`'s own. `kiln config location` reads a
 * node's labels from a (fake) API server.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
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

const run = promisify(execFile);
const DEPLOY = fileURLToPath(new URL("../../deploy/kubernetes", import.meta.url));
const IMAGE = "kiln:0.1.0";

// Loose shapes: the test reads what it checks and lets kubernetes-models judge the rest.
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: any; data?: Record<string, string> };
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

/** Renders an overlay from a copy of deploy/kubernetes whose secrets.env is the overlay's example, filled in. */
async function render(work: string, overlay: string): Promise<Obj[]> {
  const dir = join(work, "overlays", overlay);
  const example = await readFile(join(dir, "secrets.env.example"), "utf8");
  await writeFile(
    join(dir, "secrets.env"),
    example.replace(/^([A-Z_]+)=$/gm, (_, k: string) => `${k}=test-value-of-${k.toLowerCase()}`),
  );
  const { stdout } = await run("kubectl", ["kustomize", dir], { maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout).map((d) => d.toJSON() as Obj);
}

const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} rendered`);
  return o;
};
const podSpec = (o: Obj) => o.spec.template.spec;
const container = (o: Obj, name: string): Container => podSpec(o).containers.find((c: Container) => c.name === name);
const envVar = (c: Container, name: string) => c.env?.find((e) => e.name === name);
const port = (c: Container, name: string) => c.ports?.find((p) => p.name === name);

/** An env var taken from a key of the Secret kiln-secrets (whatever hash suffix kustomize gave it). */
function assertFromSecret(c: Container, name: string, objs: Obj[]): void {
  const ref = envVar(c, name)?.valueFrom?.secretKeyRef;
  assert.ok(ref, `${c.name}: ${name} comes from a Secret`);
  const secret = find(objs, "Secret", ref.name);
  assert.match(ref.name, /^kiln-secrets/);
  assert.ok(ref.key in (secret.data ?? {}), `the Secret has ${ref.key}`);
}

/** Every object against the Kubernetes OpenAPI schema of its apiVersion and kind. */
async function validate(o: Obj): Promise<void> {
  const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<string, new (x: unknown) => { validate(): void }>;
  const Model = mod[o.kind];
  assert.ok(Model, `kubernetes-models knows ${o.apiVersion} ${o.kind}`);
  assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`);
}

describe("Kubernetes manifests (kustomize)", () => {
  let skip: string | undefined;
  let work: string;
  const rendered: Record<string, Obj[]> = {};

  before(async () => {
    skip = await prerequisitesMissing("Kubernetes manifests", { kubectl: "kubernetes-client" });
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "kiln-k8s-"));
    await cp(DEPLOY, work, { recursive: true, filter: (src) => !src.endsWith("secrets.env") });
    for (const overlay of ["single-node", "production"]) rendered[overlay] = await render(work, overlay);
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("renders both overlays; every object is valid against the Kubernetes schema", async (t) => {
    if (skip) return t.skip(skip);
    for (const objs of Object.values(rendered)) {
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
        assert.ok(kinds.has(k), `${k} rendered`);
      }
      for (const o of objs) await validate(o);
      for (const o of objs.filter((x) => x.kind !== "Namespace" && !x.kind.startsWith("Cluster")))
        assert.equal(o.metadata.namespace, "kiln-system", o.metadata.name);
    }
  });

  it("every workload: the kiln image, probes on the health endpoints, resources, a locked-down security context", async (t) => {
    if (skip) return t.skip(skip);
    for (const [overlay, objs] of Object.entries(rendered)) {
      for (const w of objs.filter((o) => ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind))) {
        const spec = podSpec(w);
        assert.equal(spec.securityContext?.seccompProfile?.type, "RuntimeDefault", `${overlay} ${w.metadata.name}`);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers] as Container[]) {
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

  it("manager, scheduler and seed peer: their commands, ports and Services; the cluster secret from the Secret", async (t) => {
    if (skip) return t.skip(skip);
    for (const objs of Object.values(rendered)) {
      const manager = container(find(objs, "Deployment", "kiln-manager"), "manager");
      assert.equal(manager.args?.[0], "manager");
      assert.equal(port(manager, "http").containerPort, PORTS.manager);
      assert.equal(find(objs, "Service", "kiln-manager").spec.ports[0].port, PORTS.manager);
      for (const name of ["KILN_CLUSTER_SECRET", "KILN_SECRET_KEY", "KILN_ROOT_PASSWORD"]) assertFromSecret(manager, name, objs);

      const schedulerSet = find(objs, "StatefulSet", "kiln-scheduler");
      assert.equal(schedulerSet.spec.replicas, 1, "one scheduler per cluster");
      const scheduler = container(schedulerSet, "scheduler");
      assert.deepEqual(scheduler.args?.slice(0, 1), ["scheduler"]);
      assert.ok(scheduler.args?.includes("--manager=$(MANAGER_URL)") && scheduler.args.includes("--advertise-ip=$(POD_IP)"));
      assert.equal(port(scheduler, "http").containerPort, PORTS.scheduler);
      assert.equal(find(objs, "Service", "kiln-scheduler").spec.ports[0].port, PORTS.scheduler);
      assertFromSecret(scheduler, "KILN_CLUSTER_SECRET", objs);

      const seedSet = find(objs, "StatefulSet", "kiln-seed-peer");
      const seed = container(seedSet, "seed-peer");
      assert.deepEqual(seed.args?.slice(0, 2), ["peer", "--seed"]);
      assert.equal(port(seed, "upload").containerPort, PORTS.peerUpload);
      const claim = seedSet.spec.volumeClaimTemplates.find((v: any) => v.metadata.name === "data");
      assert.ok(claim.spec.storageClassName && claim.spec.resources.requests.storage, "a storage class and size for the seed peers' volumes");
      assert.ok(seed.volumeMounts.some((m: any) => m.name === "data" && m.mountPath === "/var/lib/kiln/seed-peer"));
      assert.ok(seed.args?.includes("--data-dir=/var/lib/kiln/seed-peer"));
      assertFromSecret(seed, "KILN_CLUSTER_SECRET", objs);
    }
  });

  it("peer DaemonSet: the proxy on host port 4001, data on a hostPath, the node's name and labels, the proxy rules from a ConfigMap", async (t) => {
    if (skip) return t.skip(skip);
    for (const objs of Object.values(rendered)) {
      const ds = find(objs, "DaemonSet", "kiln-peer");
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
      assertFromSecret(peer, "KILN_CLUSTER_SECRET", objs);
      const volumes = podSpec(ds).volumes as any[];
      assert.equal(volumes.find((v) => v.name === "data").hostPath.path, "/var/lib/kiln");
      const rules = volumes.find((v) => v.name === "proxy-config").configMap.name;
      const cm = find(objs, "ConfigMap", rules);
      // The rules parse as kiln peer --proxy-config reads them.
      const proxyConfig = ProxyConfigFile.parse(parseAllDocuments(cm.data!["proxy.yaml"]!)[0]!.toJSON());
      assert.deepEqual(proxyConfig.rules, DEFAULT_PROXY_RULES, "the default rule of kiln peer");
      // Reading node labels takes get on nodes, and nothing more.
      const role = find(objs, "ClusterRole", "kiln-peer-node-reader");
      assert.deepEqual((role as Obj & { rules: unknown }).rules, [{ apiGroups: [""], resources: ["nodes"], verbs: ["get"] }]);
      assert.equal(podSpec(ds).serviceAccountName, "kiln-peer");
    }
  });

  it("single-node: the embedded SQLite on a volume, one manager, replaced rather than rolled", async (t) => {
    if (skip) return t.skip(skip);
    const objs = rendered["single-node"]!;
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

  it("production: 2+ managers on the database and Redis from the Secret, a disruption budget, the dedicated node pool", async (t) => {
    if (skip) return t.skip(skip);
    const objs = rendered.production!;
    const d = find(objs, "Deployment", "kiln-manager");
    assert.ok(d.spec.replicas >= 2);
    const manager = container(d, "manager");
    assertFromSecret(manager, "KILN_DATABASE_URL", objs);
    assertFromSecret(manager, "KILN_REDIS_URL", objs);
    assert.equal(find(objs, "PodDisruptionBudget", "kiln-manager").spec.minAvailable, 1);
    assert.equal(find(objs, "StatefulSet", "kiln-seed-peer").spec.volumeClaimTemplates[0].spec.storageClassName, "csi-disk");
    for (const w of objs.filter((o) => ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind))) {
      const spec = podSpec(w);
      assert.ok(Object.keys(spec.nodeSelector ?? {}).length > 0, `${w.metadata.name} has a nodeSelector`);
      assert.ok(spec.tolerations?.length > 0, `${w.metadata.name} tolerates the pool's taint`);
    }
    const lb = find(objs, "Service", "kiln-peer-proxy");
    assert.deepEqual([lb.spec.type, lb.spec.ports[0].port], ["LoadBalancer", PORTS.peerProxy]);
  });

  it("the peer's init step writes the node's runtime configuration with kiln config, whole", async (t) => {
    if (skip) return t.skip(skip);
    const init = podSpec(find(rendered.production!, "DaemonSet", "kiln-peer")).initContainers[0] as Container;
    assert.deepEqual(init.command!.slice(0, 2), ["sh", "-c"]);
    const root = await mkdtemp(join(tmpdir(), "kiln-node-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    // The init container's mounts, as the pod has them.
    for (const m of init.volumeMounts as { mountPath: string }[]) await mkdir(join(root, m.mountPath), { recursive: true });
    // The script as the pod runs it, with its absolute paths moved under `root` and kiln from this checkout.
    const script = init.command![2]!.replaceAll("node /opt/kiln/bin/kiln.mjs", `node ${KILN_BIN}`).replace(/(?<=[\s"'])\/(host|run|var)\//g, `${root}/$1/`);
    const runInit = (nodeConfig: string) =>
      run("sh", ["-c", script], {
        env: {
          PATH: process.env.PATH,
          HOST_IP: "10.1.2.3",
          NODE_NAME: "node-a",
          NODE_CONFIG: nodeConfig,
          DIRECT_HOSTS: "localhost,.svc",
          LOCATION_LABELS: "a,b",
        },
      });
    await runInit("containerd");
    const expected = await runKiln(["config", "containerd", "--peer", "http://10.1.2.3:4001", "--content-only"]);
    assert.equal(await readFile(join(root, "host/etc/containerd/certs.d/_default/hosts.toml"), "utf8"), expected.stdout);
    // Outside a cluster there is no node to read: no location, and the peer still starts.
    assert.equal(await readFile(join(root, "run/kiln/location"), "utf8"), "\n");
    assert.equal((await stat(join(root, "var/lib/kiln/peer"))).uid, 1000, "the data directory is handed to the peer's user");
    await runInit("docker");
    const dropIn = await readFile(join(root, "host/etc/systemd/system/docker.service.d/http-proxy.conf"), "utf8");
    assert.equal(dropIn, (await runKiln(["config", "docker", "--peer", "http://10.1.2.3:4001", "--direct-hosts", "localhost,.svc", "--content-only"])).stdout);
    assert.match(dropIn, /NO_PROXY=localhost,\.svc/);
    await assert.rejects(runInit("cri-o"), /NODE_CONFIG must be containerd, containerd-proxy, docker or none, not cri-o/);
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
