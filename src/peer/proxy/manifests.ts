/**
 * The proxy's manifest requests (registry mirror or proxied `/v2/<repo>/manifests/...`):
 *
 * - by digest: content, from the swarm like a blob, verified, served without asking
 *   the registry (manifest-content.ts); HEAD too;
 * - by tag: asked of the registry every time; when it fails, answered from the last
 *   answer it gave, marked stale (manifest-by-tag.ts), unless switched off.
 *
 * Content that needed credentials goes only to a client the registry serves, the rule
 * blobs follow (client-access.ts): while the registry is down, only to a client it
 * accepted within --access-check-ttl-ms.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { OriginAccess } from "../../api/common.js";
import type { Logger } from "../../common/logger.js";
import type { ManifestUrlRef } from "../../common/oci.js";
import { redact } from "../../common/redact.js";
import { PROXY } from "../../common/defaults.js";
import { parseManifest } from "../../registry/manifest.js";
import type { AnonymousManifests } from "./anonymous-manifests.js";
import type { ClientAccess } from "./client-access.js";
import { downloadSpecFrom } from "./download-spec.js";
import type { ProxyEngine } from "./engine-port.js";
import { KilnError } from "../../common/errors.js";
import { forwardRequest, relayAnswer, requestOrigin } from "./forward.js";
import { answerFailure, askRegistryForTag, staleHeaders, type StaleTagOptions } from "./manifest-by-tag.js";
import { manifestFromSwarm, sendManifest, type ManifestContent } from "./manifest-content.js";
import type { TagAnswer, TagMemory } from "./tag-memory.js";

export interface ManifestDeps {
  engine: ProxyEngine;
  access: ClientAccess;
  anonymous: AnonymousManifests;
  log: Logger;
  defaultFilter: string;
  /** Undefined when stale tags are switched off. */
  tags?: { memory: TagMemory; opts: StaleTagOptions };
  /** Start the downloads of an image manifest's config and layers as soon as the manifest is answered. */
  prefetchLayers: boolean;
}

type DigestRef = Extract<ManifestUrlRef, { kind: "digest" }>;
type TagRef = Extract<ManifestUrlRef, { kind: "tag" }>;

export class ManifestRequests {
  constructor(private readonly d: ManifestDeps) {}

  /** GET or HEAD of a manifest by digest, through the swarm; the registry answers what the swarm cannot (or may not) serve. */
  async byDigest(req: IncomingMessage, res: ServerResponse, url: URL, ref: DigestRef): Promise<void> {
    let content: ManifestContent;
    try {
      content = await manifestFromSwarm(this.d.engine, downloadSpecFrom(req, url.toString(), this.d.defaultFilter), ref.digest);
    } catch (err) {
      this.d.log.info({ url: redact(url.toString()), err: (err as Error).message }, "manifest not had from the swarm: the registry answers it");
      return forwardRequest(req, res, url, this.d.log);
    }
    const access = this.withProbe(content.access, url);
    const refusal = await this.d.access.refusal(access, url, req.headers);
    if (refusal) {
      this.d.log.info({ url: redact(url.toString()), reason: refusal }, "manifest that needed credentials: the registry answers this client itself");
      return forwardRequest(req, res, url, this.d.log);
    }
    if (!access?.anonymous) void this.d.anonymous.learn(url, ref.repository);
    sendManifest(res, req.method ?? "GET", content);
    if (req.method !== "HEAD") this.prefetchBlobs(req, url, ref.repository, content.body, content.mediaType);
  }

  /** Whether `byTag` handles this request (GET or HEAD, stale tags switched on). */
  handlesTag(req: IncomingMessage): boolean {
    return this.d.tags !== undefined && (req.method === "GET" || req.method === "HEAD");
  }

  /** GET or HEAD of a manifest by tag: the registry's answer, or while it fails the remembered one. */
  async byTag(req: IncomingMessage, res: ServerResponse, url: URL, ref: TagRef): Promise<void> {
    const tags = this.d.tags;
    if (!tags) return forwardRequest(req, res, url, this.d.log);
    const digestUrl = (digest: string) => {
      const u = new URL(url);
      u.pathname = `/v2/${ref.repository}/manifests/${digest}`;
      u.search = "";
      return u;
    };
    const learned = (answer: TagAnswer, key: string) => {
      this.prefetch(req, digestUrl(answer.digest));
      if (answer.anonymous !== null) return;
      void this.d.anonymous.learn(digestUrl(answer.digest), ref.repository).then((verdict) => {
        if (verdict !== undefined) tags.memory.setAnonymous(key, answer.digest, verdict);
      });
    };
    const body = (manifest: Buffer, mediaType: string) => this.prefetchBlobs(req, url, ref.repository, manifest, mediaType);
    const outcome = await askRegistryForTag(req, res, url, ref, { memory: tags.memory, opts: tags.opts, log: this.d.log, learned, body });
    if (outcome.kind === "answered") return;
    const { failure, remembered, ageMs } = outcome;
    const what = { tag: redact(url.toString()), reason: failure.reason };
    if (!remembered) {
      this.d.log.warn(
        { ...what, ageS: ageMs ? Math.floor(ageMs / 1000) : undefined },
        "registry failed and no answer for this tag is remembered (or it is too old)",
      );
      return answerFailure(res, url, failure, this.d.log);
    }
    const target = digestUrl(remembered.digest);
    let anonymous = remembered.anonymous === true || this.d.anonymous.known(target) === true;
    let content: ManifestContent | undefined;
    if (req.method !== "HEAD") {
      try {
        content = await manifestFromSwarm(this.d.engine, downloadSpecFrom(req, target.toString(), this.d.defaultFilter), remembered.digest);
      } catch (err) {
        this.d.log.warn(
          { ...what, digest: remembered.digest, err: (err as Error).message },
          "registry failed and the swarm does not have the remembered manifest",
        );
        return answerFailure(res, url, failure, this.d.log);
      }
      anonymous ||= content.access?.anonymous === true;
    }
    const access: OriginAccess = { anonymous, origin: url.origin };
    const refusal = await this.d.access.refusal(access, url, req.headers);
    if (refusal) {
      this.d.log.info({ ...what, refusal }, "registry failed; the remembered tag needed credentials this client has not proven: not answered");
      return answerFailure(res, url, failure, this.d.log);
    }
    failure.answer?.resume();
    const headers = staleHeaders(ageMs, failure.reason);
    this.d.log.warn(
      { ...what, digest: remembered.digest, ageS: Math.floor(ageMs / 1000) },
      "registry failed: tag answered from the last answer it gave (stale)",
    );
    if (content) {
      sendManifest(res, "GET", content, headers);
      return this.prefetchBlobs(req, url, ref.repository, content.body, content.mediaType);
    }
    res.writeHead(200, {
      "content-type": remembered.mediaType,
      "content-length": String(remembered.size),
      "docker-content-digest": remembered.digest,
      "docker-distribution-api-version": "registry/2.0",
      ...headers,
    });
    res.end();
  }

  /**
   * The API version check (`GET /v2/`) a client makes before it pulls: the registry's
   * answer, or while it fails (and stale tags are on) a 200 of the peer's own, marked
   * stale, so a client gets on to what the swarm can serve.
   */
  async versionCheck(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let answer: IncomingMessage;
    try {
      answer = await requestOrigin(req, url, this.d.tags?.opts.timeoutMs);
    } catch (err) {
      if (!this.d.tags || !(err instanceof KilnError)) throw err;
      return this.answerVersionCheck(res, url, err.message);
    }
    const status = answer.statusCode ?? 502;
    if (!this.d.tags || (status < 500 && status !== 429)) return relayAnswer(answer, res, url, this.d.log);
    answer.resume();
    this.answerVersionCheck(res, url, `registry answered ${status}`);
  }

  private answerVersionCheck(res: ServerResponse, url: URL, reason: string): void {
    this.d.log.info({ registry: url.origin, reason }, "registry failed: the API version check answered by the peer");
    res.writeHead(200, { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0", ...staleHeaders(0, reason) }).end("{}");
  }

  /**
   * Brings the manifest a tag answer named into the swarm (this peer's store), so that
   * it can be served when the registry is down, also to a client that only ever asked
   * by tag (skopeo). Already stored: nothing happens; a failure is only logged.
   */
  private prefetch(req: IncomingMessage, url: URL): void {
    const spec = downloadSpecFrom(req, url.toString(), this.d.defaultFilter);
    this.d.engine.download(spec).then(
      (download) => download.done.catch((err: Error) => this.d.log.debug({ url: redact(url.toString()), err: err.message }, "manifest prefetch failed")),
      (err: Error) => this.d.log.debug({ url: redact(url.toString()), err: err.message }, "manifest prefetch failed"),
    );
  }

  /**
   * The config and layers an image manifest names, downloaded through the swarm as soon
   * as the manifest went to the client, which asks for them next (skopeo six at a time,
   * containerd three): each blob's download is under way, or done, when its request
   * comes. Blob tasks are keyed by digest, so the client's requests join these. The
   * client's credentials go with them; serving them stays subject to the access rule.
   */
  private prefetchBlobs(req: IncomingMessage, manifestUrl: URL, repository: string, body: Buffer, mediaType: string): void {
    if (!this.d.prefetchLayers) return;
    let parsed: ReturnType<typeof parseManifest>;
    try {
      parsed = parseManifest(mediaType, body, "prefetch");
    } catch {
      return;
    }
    if (parsed.kind !== "manifest") return;
    const { config, layers } = parsed.manifest;
    for (const blob of [config, ...layers].slice(0, PROXY.prefetchBlobs)) {
      if (!blob.digest.startsWith("sha256:")) continue;
      const url = new URL(`/v2/${repository}/blobs/${blob.digest}`, manifestUrl.origin);
      this.prefetch(req, url);
    }
  }

  /** A credentialed task's access, counted as anonymous when a probe found the registry serves it to anyone. */
  private withProbe(access: OriginAccess | null, url: URL): OriginAccess | null {
    if (access && !access.anonymous && this.d.anonymous.known(url) === true) return { ...access, anonymous: true };
    return access;
  }
}
