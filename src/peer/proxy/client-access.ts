/**
 * Whether a proxy client may be served a task whose origin wanted credentials
 * (OriginAccess not anonymous, or not known): only a request that names that same
 * origin, from a client the origin itself serves. The origin is asked with the
 * client's own credentials, a HEAD of the URL the client asked for.
 *
 * A yes holds for the client's credentials, the origin and the repository for
 * `ttlMs`, when the blob is one of the repository the content was fetched from (a
 * manifest always is: its task is its URL's): one round trip per image pull, not per blob. Anything else (another repository, which
 * may not hold this blob; a plain URL) is asked and remembered per URL, as is a no.
 */
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { parseBlobUrl, parseManifestUrl } from "../../common/oci.js";
import type { OriginAccess } from "../../api/common.js";

export interface ClientAccessOptions {
  /** How long an origin's yes or no is remembered. */
  ttlMs: number;
  /** How long the origin has to answer a check (no answer: not served). */
  timeoutMs: number;
  /** Remembered answers at most (the oldest are forgotten first). */
  maxEntries: number;
}

/** Asks the origin whether it serves `url` with these request headers: its status, or undefined when it did not answer. */
export type OriginCheck = (url: URL, headers: Record<string, string>, timeoutMs: number) => Promise<number | undefined>;

/** A HEAD that does not follow redirects (a registry redirecting to signed storage serves the blob). */
export const headOrigin: OriginCheck = async (url, headers, timeoutMs) => {
  try {
    const res = await fetch(url, { method: "HEAD", headers, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
    return res.status;
  } catch {
    return undefined;
  }
};

export class ClientAccess {
  private readonly answers = new Map<string, { served: boolean; until: number }>();
  /** Checks under way, by what they decide: concurrent blob requests of one pull wait for one. */
  private readonly asking = new Map<string, Promise<boolean>>();

  constructor(
    private readonly opts: ClientAccessOptions,
    private readonly check: OriginCheck = headOrigin,
  ) {}

  /** Undefined when the client of `headers` may be served the task's content at `url`; else why not. */
  async refusal(access: OriginAccess | null, url: URL, headers: IncomingHttpHeaders): Promise<string | undefined> {
    if (access?.anonymous) return undefined;
    if (access && access.origin !== url.origin) return `the content came from ${access.origin} with credentials, and this request names ${url.origin}`;
    const credentials = clientCredentials(headers);
    const who = createHash("sha256").update(JSON.stringify(credentials)).digest("base64url");
    const repository = contentRepository(url, access);
    const urlKey = `${who} ${url.origin}${url.pathname}${url.search}`;
    const repositoryKey = repository !== undefined ? `${who} ${url.origin} ${repository}` : undefined;
    if (repositoryKey && this.remembered(repositoryKey)) return undefined;
    const known = this.remembered(urlKey);
    if (known !== undefined) return known ? undefined : refusedBy(url);
    const pending = repositoryKey ? this.asking.get(repositoryKey) : undefined;
    if (pending && (await pending)) return undefined;
    const asked = this.ask(url, credentials, urlKey, repositoryKey);
    return (await asked) ? undefined : refusedBy(url);
  }

  private async ask(url: URL, credentials: Record<string, string>, urlKey: string, repositoryKey: string | undefined): Promise<boolean> {
    const key = repositoryKey ?? urlKey;
    const asking = (async () => {
      const status = await this.check(url, credentials, this.opts.timeoutMs);
      if (status === undefined || status >= 500) return false; // not served, and asked again next time
      const served = status < 400;
      this.remember(served && repositoryKey ? repositoryKey : urlKey, served);
      return served;
    })();
    this.asking.set(key, asking);
    try {
      return await asking;
    } finally {
      if (this.asking.get(key) === asking) this.asking.delete(key);
    }
  }

  private remembered(key: string): boolean | undefined {
    const answer = this.answers.get(key);
    if (!answer) return undefined;
    if (answer.until > Date.now()) return answer.served;
    this.answers.delete(key);
    return undefined;
  }

  private remember(key: string, served: boolean): void {
    this.answers.delete(key);
    this.answers.set(key, { served, until: Date.now() + this.opts.ttlMs });
    for (const oldest of this.answers.keys()) {
      if (this.answers.size <= this.opts.maxEntries) break;
      this.answers.delete(oldest);
    }
  }
}

/**
 * The repository `url` names when the content was fetched from it: a blob's when its
 * task came from there, a manifest's always (manifest tasks are keyed by their URL).
 */
function contentRepository(url: URL, access: OriginAccess | null): string | undefined {
  const blob = parseBlobUrl(url);
  if (blob) return blob.repository === access?.repository ? blob.repository : undefined;
  const manifest = parseManifestUrl(url);
  return manifest && (access?.repository === undefined || access.repository === manifest.repository) ? manifest.repository : undefined;
}

/** The credentials a client sent, as it would send them to the origin. */
function clientCredentials(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof headers.authorization === "string") out.authorization = headers.authorization;
  if (typeof headers.cookie === "string") out.cookie = headers.cookie;
  return out;
}

function refusedBy(url: URL): string {
  return `${url.origin} does not serve it to this client's credentials`;
}
