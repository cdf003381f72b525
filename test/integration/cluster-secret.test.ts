/**
 * KILN_CLUSTER_SECRET on the scheduler: every API call must carry it. Peers and
 * seed peers that have it work as usual; anyone else gets a 401 and cannot
 * announce hosts, register downloads or ask for preheats.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLUSTER_SECRET_HEADER } from "../../src/api/common.js";
import { SCHEDULER_API } from "../../src/api/scheduler.js";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { spawnKiln } from "../helpers/proc.js";

const SECRET = "cluster-secret-for-tests-0123456789";
const MiB = 1024 * 1024;

describe("a scheduler with a cluster secret", () => {
  let origin: TestOrigin;
  let cluster: TestCluster;
  let peer: PeerHandle;
  let tmp: string;

  before(async () => {
    origin = await startOrigin();
    origin.add("/file.bin", makeFile(6 * MiB));
    tmp = await mkdtemp(join(tmpdir(), "kiln-secret-"));
    cluster = await TestCluster.start({ schedulerEnv: { KILN_CLUSTER_SECRET: SECRET }, peerEnv: { KILN_CLUSTER_SECRET: SECRET } });
    await cluster.addPeer("seed", { seed: true });
    peer = await cluster.addPeer("peer");
  });

  after(async () => {
    await cluster?.stop();
    await origin?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("peers that have the secret download through the seed peer as usual", async () => {
    const r = await cluster.get(peer, `${origin.url}/file.bin`, join(tmp, "file.bin"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await readFile(join(tmp, "file.bin"))).length, 6 * MiB);
    assert.equal(origin.requests.filter((q) => q.path === "/file.bin").length, 1, "the seed peer fetched it (its trigger got through)");
  });

  it("API calls without the secret, or with a wrong one, get 401 and change nothing", async () => {
    const host = {
      id: "intruder",
      hostname: "x",
      ip: "127.0.0.1",
      uploadPort: 9,
      isSeed: true,
      uploadSlots: 1,
      freeUploadSlots: 1,
      controlToken: "t".repeat(40),
    };
    const calls: [string, string, unknown][] = [
      ["POST", `${SCHEDULER_API}/hosts`, host],
      ["POST", `${SCHEDULER_API}/preheat`, { download: { url: `${origin.url}/file.bin` } }],
      ["POST", `${SCHEDULER_API}/peers`, { peerId: "p", hostId: "intruder", download: { url: `${origin.url}/x` } }],
      ["GET", `${SCHEDULER_API}/tasks/${"a".repeat(64)}`, undefined],
    ];
    for (const headers of [{}, { [CLUSTER_SECRET_HEADER]: "wrong" }, { [CLUSTER_SECRET_HEADER]: SECRET.slice(0, -1) }] as Record<string, string>[]) {
      for (const [method, path, body] of calls) {
        const r = await fetch(`${cluster.schedulerUrl}${path}`, {
          method,
          headers: { ...headers, ...(body ? { "content-type": "application/json" } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.match(((await r.json()) as { message: string }).message, /needs the cluster secret/);
      }
    }
    assert.equal((await fetch(`${cluster.schedulerUrl}/healthy`)).status, 200, "health checks stay open");
    const withSecret = await fetch(`${cluster.schedulerUrl}${SCHEDULER_API}/hosts`, {
      method: "POST",
      headers: { "content-type": "application/json", [CLUSTER_SECRET_HEADER]: SECRET },
      body: JSON.stringify({ ...host, id: "welcome" }),
    });
    assert.equal(withSecret.status, 200, "the same call with the secret is accepted");
  });

  it("a peer started without the secret cannot download through the swarm, and says why", async () => {
    const outsider = await spawnKiln(
      [
        "peer",
        "--scheduler",
        cluster.schedulerUrl,
        "--host",
        "127.0.0.1",
        "--advertise-ip",
        "127.0.0.1",
        "--hostname",
        "outsider",
        "--port",
        "0",
        "--proxy-port",
        "0",
        "--metrics-port",
        "0",
        "--data-dir",
        join(tmp, "outsider"),
      ],
      { env: { KILN_CLUSTER_SECRET: "" } },
    );
    try {
      // What `kiln get` sends: an absolute URL with X-Dragonfly-Use-P2P.
      const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const req = http.request(
          { host: "127.0.0.1", port: outsider.ready.proxyPort as number, path: `${origin.url}/file.bin`, headers: { "x-dragonfly-use-p2p": "true" } },
          (r) => {
            const chunks: Buffer[] = [];
            r.on("data", (d: Buffer) => chunks.push(d));
            r.on("end", () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
          },
        );
        req.on("error", reject).end();
      });
      assert.equal(res.status, 401);
      assert.match(res.body.toString(), /needs the cluster secret/);
      assert.equal(origin.requests.filter((q) => q.path === "/file.bin").length, 1, "the origin was not asked again");
      // The peer logs its refused announce on its own schedule, not before it answers: give it a moment.
      for (let i = 0; i < 100 && !outsider.lines.some((l) => l.includes("needs the cluster secret")); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(outsider.lines.join("\n"), /needs the cluster secret/, "its log says why it is not in the swarm");
    } finally {
      await outsider.kill();
    }
  });
});
