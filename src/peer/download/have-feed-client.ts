/**
 * The child's end of the have feeds (see upload/have-feed.ts): one kept-open GET per
 * parent, whose lines say which pieces that parent holds as they land there.
 */
import http from "node:http";
import { BitSet } from "../../common/bitset.js";
import { describeNetworkError } from "../../common/errors.js";
import { HAVE_FEED_CONTENT_TYPE, PEER_PATHS, UPLOAD_CREDENTIAL_HEADER, decodeHaveFeedLine } from "../../api/peer.js";
import type { ParentInfo } from "../../api/scheduler.js";

export interface FeedEvents {
  /** Everything the parent held when the feed opened. */
  bits(parentId: string, pieces: BitSet): void;
  have(parentId: string, n: number): void;
  /** The feed ended or could not open; `reason` says why. */
  closed(parentId: string, reason: string): void;
}

/** Where a child subscribes to parents' feeds (HTTP to their upload ports; a fake in tests). */
export interface FeedSource {
  /** Opens the feed; returns a function that closes it (no `closed` event follows). */
  open(parent: ParentInfo, taskId: string, events: FeedEvents): () => void;
}

/** Longest line a feed may send (a bitmap of MAX_PIECES pieces in base64 is ~175 KiB). */
const MAX_LINE = 256 * 1024;

/**
 * Feeds from parents' upload ports, presenting the cluster's upload `credential()` as piece
 * requests do. A feed whose response has not begun within `openTimeoutMs` is opened again
 * on a new connection, up to `openAttempts` times: a parent whose links are full drops
 * SYNs, and the kernel's own SYN retries back off to 1, 3, 7, 15, 31, 63 s, while the parent
 * may hold every piece the child lacks (64 nodes on 40 Mbit links: up to 3 feeds per late
 * child took all 5 attempts).
 */
export const httpFeedSource = (credential: () => string, opts: { openTimeoutMs: number; openAttempts: number }): FeedSource => ({
  open(parent, taskId, events) {
    let ended = false;
    let req: http.ClientRequest | undefined;
    let openTimer: NodeJS.Timeout | undefined;
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      clearTimeout(openTimer);
      req?.destroy();
      events.closed(parent.peerId, reason);
    };
    const attempt = (n: number) => {
      const current = http.get(
        {
          host: parent.ip,
          port: parent.uploadPort,
          path: PEER_PATHS.feed(taskId),
          agent: false,
          headers: { accept: HAVE_FEED_CONTENT_TYPE, [UPLOAD_CREDENTIAL_HEADER]: credential() },
        },
        (res) => {
          clearTimeout(openTimer);
          if (res.statusCode !== 200) {
            res.resume();
            return end(`parent ${parent.peerId} answered ${res.statusCode} for its have feed`);
          }
          read(res);
        },
      );
      req = current;
      openTimer = setTimeout(() => {
        current.destroy();
        if (n + 1 < opts.openAttempts) return attempt(n + 1);
        end(`parent ${parent.peerId} did not open its have feed within ${opts.openTimeoutMs} ms, ${opts.openAttempts} times`);
      }, opts.openTimeoutMs);
      current.on("error", (err) => {
        if (current === req) end(`parent ${parent.peerId} unreachable: ${describeNetworkError(err)}`);
      });
    };
    const read = (res: http.IncomingMessage) => {
      res.setEncoding("latin1");
      let buffered = "";
      res.on("data", (chunk: string) => {
        buffered += chunk;
        let nl = buffered.indexOf("\n");
        while (nl >= 0 && !ended) {
          const line = decodeHaveFeedLine(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          if (!line) return end(`parent ${parent.peerId} sent a malformed have feed`);
          if (line.type === "have") events.have(parent.peerId, line.piece);
          else events.bits(parent.peerId, BitSet.fromBase64(line.base64));
          nl = buffered.indexOf("\n");
        }
        if (buffered.length > MAX_LINE) end(`parent ${parent.peerId} sent an oversized have feed line`);
      });
      res.on("end", () => end(`parent ${parent.peerId} ended its have feed`));
      res.on("error", (err) => end(`parent ${parent.peerId} have feed broke: ${describeNetworkError(err)}`));
    };
    attempt(0);
    return () => {
      ended = true;
      clearTimeout(openTimer);
      req?.destroy();
    };
  },
});
