/**
 * Who an origin serves a task's content to, found out by the peer that fetches it from
 * the origin (it travels with the task, see OriginAccess). Content fetched without
 * credentials is anonymous; content fetched with them is asked for once more without
 * them (a HEAD, with the registry's anonymous token where it gives one, as Docker Hub
 * does for public images): only an origin that serves that is anonymous too.
 */
import { parseBlobUrl, type BlobRef } from "../../common/oci.js";
import type { DownloadSpec, OriginAccess } from "../../api/common.js";
import { RegistryClient } from "../../registry/client.js";

/** Request headers that carry a client's credentials. */
const CREDENTIAL_HEADERS = new Set(["authorization", "cookie"]);
const PROBE_TIMEOUT_MS = 10_000;

/** Whether a request for `url` with `headers` carries credentials (a header or the URL's user info). */
export function carriesCredentials(url: URL, headers: Record<string, string>): boolean {
  return url.username !== "" || url.password !== "" || Object.keys(headers).some((k) => CREDENTIAL_HEADERS.has(k.toLowerCase()));
}

/** Where the content of `spec` comes from, and whether it was asked for without credentials (no request made). */
export function accessAsRequested(spec: DownloadSpec): OriginAccess {
  const url = new URL(spec.url);
  const blob = parseBlobUrl(url);
  return { anonymous: !carriesCredentials(url, spec.headers), origin: url.origin, ...(blob ? { repository: blob.repository } : {}) };
}

/** Who the origin of `spec` serves its content to; never rejects (an origin that cannot be asked is not anonymous). */
export async function probeOriginAccess(spec: DownloadSpec): Promise<OriginAccess> {
  const access = accessAsRequested(spec);
  if (access.anonymous) return access;
  const url = new URL(spec.url);
  url.username = "";
  url.password = "";
  return { ...access, anonymous: await servedAnonymously(url, parseBlobUrl(url)).catch(() => false) };
}

async function servedAnonymously(url: URL, blob: BlobRef | undefined): Promise<boolean> {
  if (!blob) {
    const res = await fetch(url, { method: "HEAD", redirect: "manual", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return res.status >= 200 && res.status < 400;
  }
  // A registry: answers its challenge without credentials (an anonymous bearer token, where it gives one).
  const client = new RegistryClient({ timeoutMs: PROBE_TIMEOUT_MS, redirect: "manual" });
  const ref = { origin: url.origin, repository: blob.repository, reference: blob.digest, search: "" };
  const res = await client.request("HEAD", url.toString(), {}, ref);
  // A redirect to signed storage is the registry serving it.
  return res.status >= 200 && res.status < 400;
}
