/**
 * Client sockets that misbehave must never end a process. `kiln up` runs manager,
 * scheduler, seed peer and peer in one process, so one unhandled socket error on any
 * port would take all of them down: every port gets connections that stop at a random
 * point of a request and are reset (SO_LINGER 0), and every port must still serve.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { freePort } from "../helpers/registry.js";

/** Requests each port could receive; a prefix of one, cut at a random byte, is what the reset interrupts. */
const REQUESTS = [
  "CONNECT 10.9.9.9:443 HTTP/1.1\r\nHost: 10.9.9.9:443\r\n\r\n",
  "CONNECT not a target HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET http://10.9.9.9/ HTTP/1.1\r\nHost: 10.9.9.9\r\n\r\n",
  `GET /v2/library/alpine/blobs/sha256:${"a".repeat(64)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'POST /api/v1/users/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"name":"root","password":"wrong-pass"}',
  'POST /oapi/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nContent-Length: 100000\r\n\r\n{"type":',
  `GET /pieces/${"b".repeat(64)}/0 HTTP/1.1\r\nHost: x\r\n\r\n`,
  "POST /prefetch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
  "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /healthy HTTP/1.1\r\nHost: x\r\n\r\n",
];

/** Connects, writes `bytes`, waits `waitMs`, then resets the connection (RST, not FIN). */
function resetAfter(port: number, bytes: string, waitMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("close", () => resolve());
    socket.on("connect", () => {
      socket.write(bytes);
      setTimeout(() => socket.resetAndDestroy(), waitMs);
    });
  });
}

describe("chaos on every port of kiln up", () => {
  let up: KilnProcess | undefined;
  let dir: string | undefined;
  after(async () => {
    await up?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("connections reset at random points leave every process serving", async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-chaos-"));
    const names = ["--manager-port", "--scheduler-port", "--peer-port", "--proxy-port", "--metrics-port", "--seed-port", "--seed-metrics-port"];
    const ports = await Promise.all(names.map(() => freePort()));
    up = await spawnKiln(["up", "--host", "127.0.0.1", "--data-dir", dir, ...names.flatMap((n, i) => [n, String(ports[i])])], { timeoutMs: 60_000 });

    // The reported reproduction first: a refused CONNECT followed by a reset, five times.
    for (let i = 0; i < 5; i++) await resetAfter(ports[3]!, REQUESTS[0]!, 20);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: ports.length - 1 }),
        fc.integer({ min: 0, max: REQUESTS.length - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 30 }),
        async (p, r, cut, waitMs) => {
          const request = REQUESTS[r]!;
          await resetAfter(ports[p]!, request.slice(0, Math.round(cut * request.length)), waitMs);
        },
      ),
      { numRuns: 300 },
    );
    assert.equal(up.proc.exitCode, null, `kiln up exited:\n${up.stderr.slice(-20).join("\n")}`);
    for (const [i, port] of ports.entries()) {
      const path = names[i]!.includes("metrics") ? "/metrics" : "/healthy";
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      assert.equal(r.status, 200, `${names[i]} ${port}${path}`);
    }
  });
});
