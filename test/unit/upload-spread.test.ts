/**
 * A spreader's upload port: a piece a child asked for counts as being sent while the
 * request waits for an upload slot, so the piece is not offered to another child meanwhile
 * (two copies of one piece out of the spreader's uplink).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomBytes } from "node:crypto";
import { BitSet } from "../../src/common/bitset.js";
import { HAVE_FEED_CONTENT_TYPE, PEER_PATHS, UPLOAD_CREDENTIAL_HEADER, decodeHaveFeedLine } from "../../src/api/peer.js";
import { PeerMetrics } from "../../src/peer/metrics.js";
import type { PeerEngine } from "../../src/peer/download/engine.js";
import type { Storage } from "../../src/peer/storage/storage.js";
import { UploadMembership } from "../../src/peer/upload/membership.js";
import { UploadServer } from "../../src/peer/upload/upload-server.js";
import { silentLog, tempStorage } from "../helpers/download-fakes.js";

const MiB = 1024 * 1024;
/** Four 1 MiB blocks: the first goes out at once, each next one waits for the rate limit. */
const PIECE = 4 * MiB;
const TASK = "c".repeat(64);
const CREDENTIAL = "cluster-credential";

/** A child's feed: the pieces it has been told of. */
function subscribe(port: number): { told: Set<number>; close(): void } {
  const told = new Set<number>();
  const req = http.get(
    { host: "127.0.0.1", port, path: PEER_PATHS.feed(TASK), agent: false, headers: { accept: HAVE_FEED_CONTENT_TYPE, [UPLOAD_CREDENTIAL_HEADER]: CREDENTIAL } },
    (res) => {
      let buffered = "";
      res.setEncoding("latin1").on("data", (chunk: string) => {
        buffered += chunk;
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = decodeHaveFeedLine(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          if (line?.type === "have") told.add(line.piece);
          else if (line) for (const n of BitSet.fromBase64(line.base64)) told.add(n);
        }
      });
    },
  );
  req.on("error", () => undefined);
  return { told, close: () => req.destroy() };
}

/** GET of piece `n`: `sent` once the request is out. */
function fetchPiece(port: number, n: number): { sent: Promise<void>; cut(): void } {
  const req = http.get(
    { host: "127.0.0.1", port, path: PEER_PATHS.piece(TASK, n), agent: false, headers: { [UPLOAD_CREDENTIAL_HEADER]: CREDENTIAL } },
    (res) => {
      res.on("error", () => undefined);
      res.resume();
    },
  );
  req.on("error", () => undefined);
  const sent = new Promise<void>((resolve) => req.on("finish", resolve));
  return { sent, cut: () => req.destroy() };
}

describe("a spreader's upload port", () => {
  let storage: Storage;
  let cleanup: () => Promise<void>;
  let server: UploadServer;
  let port: number;

  before(async () => {
    ({ storage, cleanup } = await tempStorage());
    const task = await storage.create(TASK, { url: "http://origin.test/spread", tag: "", application: "", explicitPieceLength: null });
    await task.setLayout(2 * PIECE, PIECE);
    for (const n of [0, 1]) {
      const w = task.pieceWriter(n);
      w.write(randomBytes(PIECE));
      task.commitPiece(n, await w.end());
    }
    const membership = new UploadMembership();
    membership.update(CREDENTIAL);
    const engine = { fetchesFromOrigin: () => false } as unknown as PeerEngine;
    // One upload slot, and uploads slow enough (256 KiB/s) that a piece holds it for seconds.
    server = new UploadServer(storage, engine, new PeerMetrics(), silentLog, {
      concurrency: 1,
      rateBytesPerSec: 256 * 1024,
      controlToken: "control",
      membership,
      seed: true,
      spread: { firstReceivers: 1, tickMs: 500, idleReleaseMs: 60_000, forceReleaseMs: 60_000 },
    });
    port = await server.listen("127.0.0.1", 0);
  });

  after(async () => {
    await server?.close();
    await cleanup?.();
  });

  it("a piece asked for while the only slot is busy is not offered to another child while the request waits", async () => {
    const a = subscribe(port);
    const b = subscribe(port);
    await new Promise((r) => setTimeout(r, 50));
    // Each child starts with one piece nobody was offered yet, in turn (the next tick is 500 ms away).
    assert.deepEqual([[...a.told], [...b.told]], [[0], [1]]);
    const first = fetchPiece(port, 0); // holds the slot for about 12 s
    await first.sent;
    await new Promise((r) => setTimeout(r, 20));
    const second = fetchPiece(port, 1); // waits in line for that slot
    await second.sent;
    await new Promise((r) => setTimeout(r, 1_200)); // two spread ticks
    assert.deepEqual([...a.told].sort(), [0], "piece 1 is B's while B's request waits for the slot: not offered to A");
    first.cut();
    second.cut();
    a.close();
    b.close();
  });
});
