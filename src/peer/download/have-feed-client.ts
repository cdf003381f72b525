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

/** Feeds from parents' upload ports, presenting the cluster's upload `credential()` as piece requests do. */
export const httpFeedSource = (credential: () => string): FeedSource => ({
  open(parent, taskId, events) {
    let ended = false;
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      req.destroy();
      events.closed(parent.peerId, reason);
    };
    const req = http.get(
      {
        host: parent.ip,
        port: parent.uploadPort,
        path: PEER_PATHS.feed(taskId),
        agent: false,
        headers: { accept: HAVE_FEED_CONTENT_TYPE, [UPLOAD_CREDENTIAL_HEADER]: credential() },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return end(`parent ${parent.peerId} answered ${res.statusCode} for its have feed`);
        }
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
      },
    );
    req.on("error", (err) => end(`parent ${parent.peerId} unreachable: ${describeNetworkError(err)}`));
    return () => {
      ended = true;
      req.destroy();
    };
  },
});
