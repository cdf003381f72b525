/**
 * Live preheat progress, real processes on loopback: the origin holds the file after
 * 3 of its 6 pieces, and while it does the job's `result` (Open API) and `kiln preheat`
 * show 12 of 24 MiB on the seed peer, by IP and port; released, both show it all.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startManagedCluster, type ManagedCluster } from "../helpers/managed-cluster.js";
import { KILN_BIN } from "../helpers/proc.js";
import { api } from "../helpers/manager.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";

const MiB = 1024 * 1024;

describe("preheat progress", () => {
  let dir: string;
  let mc: ManagedCluster;
  let origin: TestOrigin;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-preheat-progress-"));
    mc = await startManagedCluster(dir, { rootPassword: "progress-root-password" });
    origin = await startOrigin();
  });

  after(async () => {
    await mc?.stop();
    await origin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("bytes and pieces rise in the job's result and in kiln preheat's output while the seed peer fetches", async () => {
    origin.add("/files/big.bin", makeFile(24 * MiB));
    const release = origin.hold("/files/big.bin", 12 * MiB);
    const url = `${origin.url}/files/big.bin`;
    const cli = spawn(process.execPath, [KILN_BIN, "preheat", "file", url, "--manager", mc.managerUrl, "--poll-ms", "100"], {
      env: { ...process.env, KILN_TOKEN: mc.token },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    cli.stdout.on("data", (d: Buffer) => (stdout += d));
    const halfway = new Promise<void>((resolve) => {
      cli.stderr.on("data", (d: Buffer) => {
        stderr += d;
        if (stderr.includes("12.0 MiB of 24.0 MiB")) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => cli.on("exit", resolve));
    await Promise.race([halfway, exited]);
    assert.match(stderr, /12\.0 MiB of 24\.0 MiB · 3\/6 pieces/, stderr);

    // The Open API shows the same numbers while the origin holds.
    const list = await api(`${mc.managerUrl}/oapi/v1/jobs`, { token: mc.token });
    const id = list.json[0].id as number;
    const during = (await api(`${mc.managerUrl}/oapi/v1/jobs/${id}`, { token: mc.token })).json;
    assert.equal(during.state, "PENDING");
    const p = during.result.progress;
    assert.deepEqual([p.total, p.succeeded, p.failed], [1, 0, 0], "Dragonfly's counts unchanged");
    assert.deepEqual([p.bytes_done, p.bytes_total, p.pieces_done, p.pieces_total, p.hosts_fetching], [12 * MiB, 24 * MiB, 3, 6, 1]);
    const task = during.result.tasks[0];
    assert.equal(task.url, url);
    assert.equal(task.state, "running");
    assert.deepEqual(
      task.hosts.map((h: any) => [h.hostname, h.ip, h.port, h.state, h.from_origin, h.bytes_done, h.finished_pieces]),
      [["seed-1", "127.0.0.1", mc.seed.uploadPort, "fetching", true, 12 * MiB, 3]],
    );
    assert.ok(
      during.result.log.some((l: string) => l.includes(`seed peer seed-1 (127.0.0.1:${mc.seed.uploadPort}) started fetching from the origin`)),
      during.result.log.join("\n"),
    );

    release();
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /24\.0 MiB of 24\.0 MiB · 6\/6 pieces · 1\/1 tasks/, stderr);
    assert.match(stderr, /seed-1 \(127\.0\.0\.1:\d+\) done: 24\.0 MiB/, "the log lines are printed as they come");
    assert.match(stdout, new RegExp(`SUCCESS: job ${id} preheated 1 URL\\(s\\) on seed-1 \\(127\\.0\\.0\\.1:${mc.seed.uploadPort}\\)`));
    const after = (await api(`${mc.managerUrl}/oapi/v1/jobs/${id}`, { token: mc.token })).json;
    assert.equal(after.state, "SUCCESS");
    assert.deepEqual([after.result.progress.bytes_done, after.result.progress.rate_bps, after.result.tasks[0].state], [24 * MiB, 0, "succeeded"]);
    assert.equal(after.result.success_tasks[0].port, mc.seed.uploadPort);
  });
});
