import { createHash } from "node:crypto";
import { KilnError } from "./errors.js";
import { parseBlobUrl } from "./oci.js";
import { TASK_ID_PATTERN } from "./task-id-pattern.js";

/** Blob URLs are defined in oci.ts; re-exported for the modules that key tasks by them. */
export { parseBlobUrl, type BlobRef } from "./oci.js";
export { TASK_ID_PATTERN };

/**
 * Task identity, as Dragonfly's (Rust) client computes it: lowercase hex SHA-256
 * over the filtered URL, tag, application, revision, the piece length when given,
 * and the literal "STANDARD". Empty parts add nothing.
 */
export interface TaskIdInput {
  url: string;
  tag?: string;
  application?: string;
  revision?: string;
  /** Only an explicitly requested piece length takes part. */
  pieceLength?: number;
  /** Query keys to drop before hashing, e.g. ["Expires", "Signature", "ns"]. */
  filteredQueryParams?: readonly string[];
}

/** `Expires&Signature&ns` → ["Expires", "Signature", "ns"]. */
export function parseFilter(filter: string | undefined): string[] {
  if (!filter) return [];
  return filter
    .split("&")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Removes every query pair whose key equals one of `filters` (case-sensitive),
 * keeping the others in their original order; drops an empty query and any user-info. Follows the
 * WHATWG URL serialisation that Dragonfly's Rust client uses, except that a bare
 * "/" path with nothing after it is written without the slash.
 */
export function filterUrl(rawUrl: string, filters: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new KilnError("BAD_REQUEST", `invalid URL: ${JSON.stringify(rawUrl)}`);
  }
  // Credentials are not part of what the content is: a URL with user-info names the same task as without (and never lands in a peer's metadata).
  url.username = "";
  url.password = "";
  if (url.search) {
    const kept = new URLSearchParams();
    for (const [k, v] of url.searchParams) if (!filters.includes(k)) kept.append(k, v);
    url.search = kept.toString();
  }
  let out = url.toString();
  if (url.pathname === "/" && !url.search && !url.hash && out.endsWith("/")) out = out.slice(0, -1);
  return out;
}

export function urlTaskId(input: TaskIdInput): string {
  const h = createHash("sha256");
  h.update(filterUrl(input.url, input.filteredQueryParams ?? []));
  if (input.tag) h.update(input.tag);
  if (input.application) h.update(input.application);
  if (input.revision) h.update(input.revision);
  if (input.pieceLength !== undefined && input.pieceLength !== null) h.update(String(input.pieceLength));
  h.update("STANDARD");
  return h.digest("hex");
}

/**
 * The task ID kiln uses. An OCI blob URL requested without tag, application or
 * explicit piece length is keyed by its digest (Dragonfly's blob-digest ID: the hex
 * part), so the same layer meets whatever registry host, mirror or query string
 * it came through. Everything else gets the URL-based ID.
 */
export function taskIdFor(input: TaskIdInput): string {
  const noExtras = !input.tag && !input.application && !input.revision && input.pieceLength === undefined;
  if (noExtras) {
    const blob = parseBlobUrl(input.url);
    if (blob) return blob.hex;
  }
  return urlTaskId(input);
}

/** Task IDs are hex digests; anything else (path tricks included) is refused. */
export function isTaskId(s: string): boolean {
  return TASK_ID_PATTERN.test(s);
}
