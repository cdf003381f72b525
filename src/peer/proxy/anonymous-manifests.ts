/**
 * Whether a registry serves a manifest to anyone, found out while it answers, so that
 * a public manifest can still be served from the swarm when the registry is down
 * (a private one goes only to clients proven within --access-check-ttl-ms).
 *
 * A client that sends credentials (containerd sends the registry's anonymous bearer
 * token for public images too) makes the fetched content count as credentialed: the
 * manifest is asked for once more without any, answering the registry's challenge
 * anonymously as a client without a login would.
 */
import { KilnError } from "../../common/errors.js";
import { MANIFEST_ACCEPT } from "../../registry/media-types.js";
import { RegistryClient } from "../../registry/client.js";

export interface AnonymousManifestsOptions {
  timeoutMs: number;
  maxEntries: number;
}

export class AnonymousManifests {
  private readonly verdicts = new Map<string, boolean>();
  private readonly asking = new Map<string, Promise<boolean | undefined>>();

  constructor(private readonly opts: AnonymousManifestsOptions) {}

  /** What an earlier probe found for this manifest URL; undefined when never asked (or the registry did not say). */
  known(url: URL): boolean | undefined {
    return this.verdicts.get(keyOf(url));
  }

  /** Asks the registry (once at a time per URL); never rejects: undefined when it did not answer. */
  learn(url: URL, repository: string): Promise<boolean | undefined> {
    const key = keyOf(url);
    const known = this.verdicts.get(key);
    if (known !== undefined) return Promise.resolve(known);
    const pending = this.asking.get(key);
    if (pending) return pending;
    const asked = this.probe(url, repository).then((verdict) => {
      this.asking.delete(key);
      if (verdict !== undefined) this.remember(key, verdict);
      return verdict;
    });
    this.asking.set(key, asked);
    return asked;
  }

  private async probe(url: URL, repository: string): Promise<boolean | undefined> {
    const client = new RegistryClient({ timeoutMs: this.opts.timeoutMs, redirect: "manual" });
    const reference = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
    try {
      const res = await client.request("HEAD", url.toString(), { accept: MANIFEST_ACCEPT }, { origin: url.origin, repository, reference, search: "" });
      await res.body?.cancel();
      if (res.status >= 500 || res.status === 429) return undefined;
      return res.status >= 200 && res.status < 400;
    } catch (err) {
      if (err instanceof KilnError && err.code === "ORIGIN_STATUS" && (err.status === 401 || err.status === 403)) return false;
      return undefined;
    }
  }

  private remember(key: string, verdict: boolean): void {
    this.verdicts.delete(key);
    this.verdicts.set(key, verdict);
    for (const oldest of this.verdicts.keys()) {
      if (this.verdicts.size <= this.opts.maxEntries) break;
      this.verdicts.delete(oldest);
    }
  }
}

function keyOf(url: URL): string {
  return `${url.origin}${url.pathname}`;
}
