/** A proxied request's X-Dragonfly-* headers → what to download, validated. */
import type { IncomingMessage } from "node:http";
import { KilnError } from "../../common/errors.js";
import { parseFilter } from "../../common/task-id.js";
import { validateExplicitPieceLength } from "../../common/piece.js";
import { redact } from "../../common/redact.js";
import { DownloadSpec } from "../../api/common.js";
import { DRAGONFLY_HEADERS } from "../../api/proxy.js";
import { endToEndHeaders } from "./forward.js";

/** X-Dragonfly-Use-P2P: `true` / `false` (any case); anything else counts as not sent. */
export function useP2PHeader(req: IncomingMessage): boolean | undefined {
  const header = String(req.headers[DRAGONFLY_HEADERS.useP2P] ?? "").toLowerCase();
  return header === "true" ? true : header === "false" ? false : undefined;
}

/** The download `req` asks for at `url`; `defaultFilter` applies when the client sends no filter header. */
export function downloadSpecFrom(req: IncomingMessage, url: string, defaultFilter: string): DownloadSpec {
  const h = req.headers;
  const pieceHeader = h[DRAGONFLY_HEADERS.pieceLength];
  const pieceLength = pieceHeader ? validateExplicitPieceLength(Number(pieceHeader)) : undefined;
  const filter = h[DRAGONFLY_HEADERS.filter];
  const spec = DownloadSpec.safeParse({
    url,
    headers: endToEndHeaders(req, { range: false }),
    tag: String(h[DRAGONFLY_HEADERS.tag] ?? ""),
    application: String(h[DRAGONFLY_HEADERS.application] ?? ""),
    filteredQueryParams: parseFilter(typeof filter === "string" ? filter : defaultFilter),
    ...(pieceLength ? { pieceLength } : {}),
  });
  if (!spec.success) {
    const issue = spec.error.issues[0];
    throw new KilnError("BAD_REQUEST", `${issue?.path.join(".") || "request"}: ${issue?.message ?? "invalid"} (${redact(url)})`);
  }
  return spec.data;
}
