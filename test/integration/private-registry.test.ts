/**
 * Content that needed credentials stays with those the origin would serve, and
 * pieces stay inside the cluster:
 *
 * - upload ports answer /pieces and /tasks only with the cluster's upload credential
 *   (a raw curl without it gets 401), while piece transfer between peers goes on;
 * - a private registry's blobs (docker-registry behind htpasswd) are served through a
 *   peer's mirror only to clients the registry itself serves: skopeo and ctr with
 *   credentials pull through two peers, without (or with wrong ones) they get the
 *   registry's 401 for the manifest and every blob, through any peer, under any
 *   repository name, and with `ns=` naming another registry.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { UPLOAD_CREDENTIAL_HEADER } from "../../src/api/peer.js";
import { TestCluster, metric, type PeerHandle } from "../helpers/cluster.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { prerequisitesMissing } from "../helpers/prereq.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A raw `curl` of `url`: status and body. */
async function curl(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  const args = ["-s", "-o", "-", "-w", "\n%{http_code}", ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
  const { stdout } = await run("curl", args, { encoding: "buffer", maxBuffer: 64 * MiB });
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.subarray(cut + 1).toString()), body: stdout.subarray(0, cut) };
}

describe("upload ports serve members of their cluster only", async () => {
  const skip = await prerequisitesMissing("upload port membership test", { curl: "curl" });
  const SECRET = "upload-membership-secret-0123456789";
  const file = makeFile(6 * MiB);
  let origin: TestOrigin;
  let dir: string;
  const clusters: TestCluster[] = [];

  before(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-members-"));
    origin = await startOrigin();
    origin.add("/members.bin", file);
  });

  after(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
    await origin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Seed + peer; the peer downloads the file through the seed. Returns them and the task ID. */
  const swarm = async (clusterSecret?: string): Promise<{ cluster: TestCluster; seed: PeerHandle; peer: PeerHandle; taskId: string }> => {
    const cluster = await TestCluster.start(clusterSecret ? { clusterSecret } : {});
    clusters.push(cluster);
    const seed = await cluster.addPeer("seed", { seed: true });
    const peer = await cluster.addPeer("peer");
    const before = origin.requests.length;
    const got = await cluster.get(peer, `${origin.url}/members.bin`, join(dir, `members-${clusters.length}.bin`));
    assert.equal(got.code, 0, got.stderr);
    assert.equal(origin.requests.length - before, 1, "the seed fetched the file from the origin once");
    assert.ok(
      (await metric(peer.metricsUrl, "kiln_peer_download_bytes_total", { source: "p2p" })) >= file.data.length,
      "the peer got every piece from the seed",
    );
    return { cluster, seed, peer, taskId: /task ([0-9a-f]{64})/.exec(got.stderr)![1]! };
  };

  it("with a cluster secret: pieces move between peers, and a raw curl without the credential (or a wrong one) gets 401", { skip }, async () => {
    const { cluster, seed, peer, taskId } = await swarm(SECRET);
    for (const p of [seed, peer]) {
      const base = `http://127.0.0.1:${p.uploadPort}`;
      for (const path of [`/tasks/${taskId}`, `/pieces/${taskId}/0`, `/pieces/${taskId}/1`]) {
        const strangers: Record<string, string>[] = [{}, { [UPLOAD_CREDENTIAL_HEADER]: "x".repeat(43) }, { [UPLOAD_CREDENTIAL_HEADER]: SECRET }];
        for (const headers of strangers) {
          const r = await curl(base + path, headers);
          assert.equal(r.status, 401, `${p.name} ${path} with ${JSON.stringify(headers)}`);
          assert.match(r.body.toString(), /serves members of its cluster only/);
        }
      }
      const whole = await curl(`${base}/tasks/${taskId}`, cluster.uploadHeaders());
      assert.equal(whole.status, 200, `${p.name}: a member reads the task`);
      assert.equal(sha256(whole.body), file.sha256);
      assert.equal((await curl(`${base}/pieces/${taskId}/0`, cluster.uploadHeaders())).status, 200);
      assert.equal((await curl(`${base}/healthy`)).status, 200, "health checks stay open");
    }
  });

  it("without a cluster secret: the scheduler's own credential still keeps strangers out", { skip }, async () => {
    const { seed, peer, taskId } = await swarm();
    for (const p of [seed, peer]) {
      for (const path of [`/tasks/${taskId}`, `/pieces/${taskId}/0`]) {
        assert.equal((await curl(`http://127.0.0.1:${p.uploadPort}${path}`)).status, 401, `${p.name} ${path}`);
      }
    }
  });
});
