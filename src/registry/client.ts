/**
 * A small OCI distribution client on fetch: answers the registry's auth
 * challenge (anonymous bearer, basic, bearer with credentials), fetches
 * manifests with the right Accept header and checks their digests.
 */
import { z } from "zod";
import { KilnError, describeNetworkError, isPlainHttpAnswer } from "../common/errors.js";
import { sha256 } from "../common/digest.js";
import { parseChallenges, type Challenge } from "./challenge.js";
import { MANIFEST_ACCEPT } from "./media-types.js";
import { describeRef, isDigest, manifestUrl, type ManifestRef } from "./reference.js";

export interface RegistryCredentials {
  username?: string;
  password?: string;
}

export interface RegistryClientOptions extends RegistryCredentials {
  /** Extra request headers (e.g. from the preheat args). */
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** "manual": a redirect is the answer (a blob HEAD only asks whether the registry serves it). Default "follow". */
  redirect?: "follow" | "manual";
}

export interface FetchedManifest {
  contentType: string;
  /** sha256 of the bytes received. */
  digest: string;
  body: Buffer;
}

const TokenReply = z.object({ token: z.string().optional(), access_token: z.string().optional() });

export class RegistryClient {
  /** The Authorization header value that worked, reused for later requests (and blob downloads). */
  authorization: string | undefined;

  constructor(private readonly opts: RegistryClientOptions = {}) {}

  private get hasCredentials(): boolean {
    return Boolean(this.opts.username || this.opts.password);
  }

  private basic(): string {
    return `Basic ${Buffer.from(`${this.opts.username ?? ""}:${this.opts.password ?? ""}`).toString("base64")}`;
  }

  private async send(url: string, headers: Record<string, string>, what: string, method = "GET", body?: Buffer): Promise<Response> {
    const signals = [AbortSignal.timeout(this.opts.timeoutMs ?? 30_000), ...(this.opts.signal ? [this.opts.signal] : [])];
    try {
      return await fetch(url, {
        method,
        headers,
        body: body ? new Uint8Array(body) : undefined,
        signal: AbortSignal.any(signals),
        redirect: this.opts.redirect ?? "follow",
      });
    } catch (err) {
      if (this.opts.signal?.aborted) throw err;
      const host = new URL(url).host;
      if (isPlainHttpAnswer(err)) throw new KilnError("ORIGIN_UNREACHABLE", `${what}: the registry answered plain HTTP; pass --insecure-registry ${host}`);
      const cause = (err as Error).name === "TimeoutError" ? `no answer within ${(this.opts.timeoutMs ?? 30_000) / 1000} s` : describeNetworkError(err);
      throw new KilnError("ORIGIN_UNREACHABLE", `${what}: registry ${host} is unreachable: ${cause}`);
    }
  }

  /** GET with the registry's auth dance: on 401 answer the challenge once and retry. */
  get(url: string, accept: string, ref: ManifestRef): Promise<Response> {
    return this.request("GET", url, { accept }, ref);
  }

  /** Any request with the auth dance (a push's HEAD, POST and PUT get a token with the push scope the registry asks for). */
  async request(method: string, url: string, headers: Record<string, string>, ref: ManifestRef, body?: Buffer): Promise<Response> {
    const base: Record<string, string> = { ...this.opts.headers, ...headers };
    const what = describeRef(ref);
    let res = await this.send(url, this.authorization ? { ...base, authorization: this.authorization } : base, what, method, body);
    if (res.status !== 401) return res;
    const header = res.headers.get("www-authenticate") ?? "";
    await res.body?.cancel();
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    if (bearer) this.authorization = await this.bearerToken(bearer, ref);
    else if (basic) {
      if (!this.hasCredentials) {
        throw new KilnError("ORIGIN_STATUS", `${what}: registry ${new URL(url).host} requires a username and password (401 Unauthorized, basic auth)`, 401);
      }
      this.authorization = this.basic();
    } else {
      throw new KilnError("ORIGIN_STATUS", `${what}: registry answered 401 Unauthorized without a usable challenge (${header || "no WWW-Authenticate"})`, 401);
    }
    res = await this.send(url, { ...base, authorization: this.authorization }, what, method, body);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new KilnError(
        "ORIGIN_STATUS",
        `${what}: registry ${new URL(url).host} refused access (${res.status} ${res.statusText})` +
          (this.hasCredentials ? ": check the username and password" : ": the image may be private; give a username and password"),
        res.status,
      );
    }
    return res;
  }

  private async bearerToken(c: Challenge, ref: ManifestRef): Promise<string> {
    const what = describeRef(ref);
    const realm = c.params.realm;
    if (!realm) throw new KilnError("ORIGIN_STATUS", `${what}: bearer challenge without a realm`, 401);
    let tokenUrl: URL;
    try {
      tokenUrl = new URL(realm);
    } catch {
      throw new KilnError("ORIGIN_STATUS", `${what}: bearer challenge with an invalid realm ${JSON.stringify(realm)}`, 401);
    }
    if (c.params.service) tokenUrl.searchParams.set("service", c.params.service);
    tokenUrl.searchParams.set("scope", c.params.scope ?? `repository:${ref.repository}:pull`);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.hasCredentials) headers.authorization = this.basic();
    const res = await this.send(tokenUrl.toString(), headers, `${what} (token service)`);
    const text = await res.text();
    if (!res.ok) {
      throw new KilnError(
        "ORIGIN_STATUS",
        `${what}: token service ${tokenUrl.host} answered ${res.status} ${res.statusText}` +
          (res.status === 401 || res.status === 403 ? (this.hasCredentials ? ": check the username and password" : ": credentials required") : ""),
        res.status,
      );
    }
    let parsed: z.infer<typeof TokenReply> | undefined;
    try {
      parsed = TokenReply.parse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    const token = parsed?.token ?? parsed?.access_token;
    if (!token) throw new KilnError("ORIGIN_STATUS", `${what}: token service ${tokenUrl.host} gave no token`, 502);
    return `Bearer ${token}`;
  }

  /** Fetches a manifest or index by tag or digest and checks its digest. */
  async manifest(ref: ManifestRef, reference = ref.reference): Promise<FetchedManifest> {
    const url = manifestUrl(ref, reference);
    const what = `${describeRef({ ...ref, reference })}`;
    const res = await this.get(url, MANIFEST_ACCEPT, ref);
    if (!res.ok) {
      const detail = await registryErrorDetail(res);
      if (res.status === 404) {
        throw new KilnError(
          "ORIGIN_STATUS",
          `${what}: ${isDigest(reference) ? "manifest" : "tag"} not found in the registry (404${detail ? `: ${detail}` : ""})`,
          404,
        );
      }
      throw new KilnError("ORIGIN_STATUS", `${what}: registry answered ${res.status} ${res.statusText}${detail ? `: ${detail}` : ""}`, res.status);
    }
    const body = Buffer.from(await res.arrayBuffer());
    const digest = sha256(body);
    if (isDigest(reference) && reference.startsWith("sha256:") && reference !== digest) {
      throw new KilnError("DIGEST_MISMATCH", `${what}: manifest digest is ${digest}, not the requested ${reference}`);
    }
    const announced = res.headers.get("docker-content-digest");
    if (announced?.startsWith("sha256:") && announced !== digest) {
      throw new KilnError("DIGEST_MISMATCH", `${what}: manifest digest is ${digest}, but the registry announced ${announced}`);
    }
    return { contentType: res.headers.get("content-type") ?? "", digest, body };
  }
}

/** The first message of an OCI error body ({"errors":[{"code","message"}]}), if any. */
async function registryErrorDetail(res: Response): Promise<string> {
  try {
    const j = (await res.json()) as { errors?: { code?: string; message?: string }[] };
    const e = j.errors?.[0];
    return e ? [e.code, e.message].filter(Boolean).join(" ") : "";
  } catch {
    return "";
  }
}
