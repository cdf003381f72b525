/**
 * The scheduler's routes and its client share SCHEDULER_PATHS: every client call
 * reaches its route on an in-process server, and the replies keep their shape.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createLogger } from "../../src/common/logger.js";
import { KilnError } from "../../src/common/errors.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import { SCHEDULER_API, SCHEDULER_PATHS, type PieceInfo } from "../../src/api/scheduler.js";
import { buildSchedulerApi } from "../../src/scheduler/server.js";
import { SchedulerService, defaultSchedulerOptions } from "../../src/scheduler/service.js";
import { hostInfo } from "../helpers/host.js";

const PL = 4 * 1024 * 1024;
const log = createLogger("scheduler-test", "silent");

function piece(n: number): PieceInfo {
  return { number: n, digest: `sha256:${createHash("sha256").update(`piece-${n}`).digest("hex")}`, length: PL };
}

let app: ReturnType<typeof buildSchedulerApi>;
let client: SchedulerClient;

before(async () => {
  app = buildSchedulerApi(new SchedulerService(log, { ...defaultSchedulerOptions, scheduleWaitMs: 0 }), log);
  await app.listen({ host: "127.0.0.1", port: 0 });
  client = new SchedulerClient(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
});

after(() => app.close());

describe("SCHEDULER_PATHS", () => {
  it("puts every route under the API prefix, with the parameters where the server expects them", () => {
    assert.equal(SCHEDULER_PATHS.schedule("T", "P"), `${SCHEDULER_API}/tasks/T/peers/P/schedule`);
    assert.equal(SCHEDULER_PATHS.peer(":taskId", ":peerId"), `${SCHEDULER_API}/tasks/:taskId/peers/:peerId`);
    assert.equal(SCHEDULER_PATHS.host("h"), `${SCHEDULER_API}/hosts/h`);
  });

  it("every client call reaches its route", async () => {
    const announced = await client.announceHost(hostInfo("api-h1"));
    assert.deepEqual(announced, { keepAliveMs: 2_000, created: true, uploadCredential: announced.uploadCredential });
    assert.equal((await client.announceHost(hostInfo("api-h1"))).uploadCredential, announced.uploadCredential, "one credential per scheduler");
    await client.announceHost(hostInfo("api-h2"));
    const src = await client.registerPeer({ peerId: "src", hostId: "api-h1", download: { url: "http://origin.example/api" } });
    assert.equal(src.action, "back_to_source");
    assert.deepEqual(await client.reportPieces(src.taskId, "src", { contentLength: 2 * PL, pieceLength: PL, pieces: [piece(0)] }), { rejected: [] });
    const child = await client.registerPeer({ peerId: "child", hostId: "api-h2", download: { url: "http://origin.example/api" } });
    assert.deepEqual(child.pieces, [piece(0)], "registration: every digest");
    assert.deepEqual(
      child.parents.map((p) => p.peerId),
      ["src"],
    );
    await client.reportPieces(src.taskId, "src", { pieces: [piece(1)] });
    const polled = await client.schedule(src.taskId, "child", { since: child.version, waitMs: 0 });
    assert.deepEqual(polled.pieces, [piece(1)], "a poll: only what is new since the version sent");
    assert.deepEqual(await client.reportFailure(src.taskId, "child", { parentId: "src", pieceNumber: 1, kind: "timeout", message: "slow" }), { ok: true });
    assert.deepEqual(await client.reportResult(src.taskId, "src", { state: "succeeded", contentLength: 2 * PL }), { ok: true });
    const status = await client.taskStatus(src.taskId);
    assert.deepEqual(
      status.peers.map((p) => [p.peerId, p.state]),
      [
        ["src", "succeeded"],
        ["child", "running"],
      ],
    );
    assert.deepEqual(await client.leaveTask(src.taskId, "child"), { ok: true });
    const unavailable = (e: unknown) => e instanceof KilnError && e.code === "UNAVAILABLE";
    await assert.rejects(client.preheat({ download: { url: "http://origin.example/api" } }), unavailable, "no seed peer to preheat on");
    assert.deepEqual(await client.leaveHost("api-h2"), { ok: true });
    await assert.rejects(client.leaveHost("api-h2"), (e: unknown) => e instanceof KilnError && e.code === "NOT_FOUND");
  });
});
