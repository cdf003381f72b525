/** The child's end of a have feed against real sockets: a parent that does not answer is asked again, then given up. */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BitSet } from "../../src/common/bitset.js";
import { HAVE_FEED_CONTENT_TYPE, UPLOAD_CREDENTIAL_HEADER, encodeHaveFeedLine } from "../../src/api/peer.js";
import type { ParentInfo } from "../../src/api/scheduler.js";
import { httpFeedSource, type FeedEvents } from "../../src/peer/download/have-feed-client.js";

const TASK = "b".repeat(64);

/** An upload port that leaves the first `silent` feed requests unanswered, then answers with `bits` holding piece 3. */
async function parentPort(silent: number): Promise<{ parent: ParentInfo; requests: () => number; credentials: string[]; close(): Promise<void> }> {
  let requests = 0;
  const credentials: string[] = [];
  const server = http.createServer((req, res) => {
    requests++;
    credentials.push(String(req.headers[UPLOAD_CREDENTIAL_HEADER]));
    if (requests <= silent) return; // holds the connection, answers nothing: a SYN or request lost on a full link looks the same
    const bits = new BitSet();
    bits.add(3);
    res.writeHead(200, { "content-type": HAVE_FEED_CONTENT_TYPE });
    res.write(encodeHaveFeedLine({ type: "bits", base64: bits.toBase64() }));
    res.write(encodeHaveFeedLine({ type: "have", piece: 5 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    parent: { peerId: "parent-1", hostId: "host-1", ip: "127.0.0.1", uploadPort: port, isSeed: false },
    requests: () => requests,
    credentials,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Events of one feed, with a promise for its end or its first `have`. */
function recorder() {
  const held = new Set<number>();
  let closedWith: string | undefined;
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  const events: FeedEvents = {
    bits: (_id, pieces) => {
      for (const n of pieces) held.add(n);
    },
    have: (_id, n) => {
      held.add(n);
      settle();
    },
    closed: (_id, reason) => {
      closedWith = reason;
      settle();
    },
  };
  return { events, held, settled, closed: () => closedWith };
}

describe("have feed client", () => {
  const ports: { close(): Promise<void> }[] = [];
  after(async () => Promise.all(ports.map((p) => p.close())));

  it("a parent that does not answer in time is asked again on a new connection, and is heard once it answers", async () => {
    const port = await parentPort(2);
    ports.push(port);
    const feed = recorder();
    const close = httpFeedSource(() => "cluster-credential", { openTimeoutMs: 150, openAttempts: 5 }).open(port.parent, TASK, feed.events);
    await feed.settled;
    close();
    assert.equal(feed.closed(), undefined, "the feed stayed open");
    assert.deepEqual([...feed.held].sort(), [3, 5], "what the parent holds and the piece it announced");
    assert.equal(port.requests(), 3, "two unanswered requests, then the one that was answered");
    assert.deepEqual(port.credentials, ["cluster-credential", "cluster-credential", "cluster-credential"]);
  });

  it("a parent that never answers is given up after the last attempt, with why", async () => {
    const port = await parentPort(Number.POSITIVE_INFINITY);
    ports.push(port);
    const feed = recorder();
    const started = Date.now();
    httpFeedSource(() => "c", { openTimeoutMs: 100, openAttempts: 3 }).open(port.parent, TASK, feed.events);
    await feed.settled;
    assert.equal(feed.closed(), "parent parent-1 did not open its have feed within 100 ms, 3 times");
    assert.equal(port.requests(), 3);
    assert.ok(Date.now() - started >= 300, "three full waits");
    assert.equal(feed.held.size, 0);
  });

  it("a refused connection ends the feed at once, not after the attempts", async () => {
    const port = await parentPort(0);
    await port.close();
    const feed = recorder();
    httpFeedSource(() => "c", { openTimeoutMs: 5_000, openAttempts: 5 }).open(port.parent, TASK, feed.events);
    await feed.settled;
    assert.match(feed.closed() ?? "", /^parent parent-1 unreachable: .*refused/i);
  });
});
