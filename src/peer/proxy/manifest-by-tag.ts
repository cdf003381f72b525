/**
 * Manifest requests by tag: always asked of the registry, whose 200 is remembered
 * (tag-memory.ts). Only when the registry fails (no connection, no answer in time,
 * 5xx, 429) is the tag answered from that memory, marked stale (`Age`, `Warning`,
 * X-Kiln-Stale) and logged; a registry that answers (a moved tag, a 404, a 401) is
 * always what the client gets.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { KilnError } from "../../common/errors.js";
import { PROXY } from "../../common/defaults.js";
import type { Logger } from "../../common/logger.js";
import { redact } from "../../common/redact.js";
import { KILN_PROXY_HEADERS } from "../../api/proxy.js";
import { relayAnswer, requestOrigin } from "./forward.js";
import type { TagAnswer, TagMemory } from "./tag-memory.js";
import { tagKey } from "./tag-memory.js";

export interface StaleTagOptions {
  /** A remembered answer older than this is not served (0: any age). */
  maxAgeMs: number;
  /** A registry that has not answered a tag request within this long has failed. */
  timeoutMs: number;
}

interface TagDeps {
  memory: TagMemory;
  log: Logger;
  /** The registry answered the tag with this. */
  learned(answer: TagAnswer, key: string): void;
  /** The manifest document a GET by tag received (verified against the announced digest). */
  body(manifest: Buffer, mediaType: string): void;
}

/** What the registry did instead of answering. */
export interface RegistryFailure {
  reason: string;
  /** Its own answer (5xx, 429), to relay when nothing better can be said. */
  answer?: IncomingMessage;
}

export type TagOutcome = { kind: "answered" } | { kind: "failed"; failure: RegistryFailure; remembered: TagAnswer | undefined; ageMs: number };

/** Asks the registry; relays and remembers its answer, or says how it failed and what is remembered. */
export async function askRegistryForTag(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ref: { repository: string; tag: string },
  deps: TagDeps & { opts: StaleTagOptions },
): Promise<TagOutcome> {
  const key = tagKey(url.origin, ref.repository, ref.tag);
  let failure: RegistryFailure;
  try {
    const answer = await requestOrigin(req, url, deps.opts.timeoutMs);
    const status = answer.statusCode ?? 502;
    if (status < 500 && status !== 429) {
      if (status === 200) rememberWhileRelaying(req, answer, key, deps);
      await relayAnswer(answer, res, url, deps.log);
      return { kind: "answered" };
    }
    failure = { reason: `registry answered ${status}`, answer };
  } catch (err) {
    if (!(err instanceof KilnError)) throw err;
    failure = { reason: err.message };
  }
  const remembered = deps.memory.recall(key);
  const ageMs = remembered ? Math.max(0, Date.now() - remembered.at) : 0;
  const fresh = remembered && (deps.opts.maxAgeMs === 0 || ageMs <= deps.opts.maxAgeMs);
  return { kind: "failed", failure, remembered: fresh ? remembered : undefined, ageMs };
}

/** The headers of a stale answer: standard `Age` and `Warning`, and kiln's own with the why. */
export function staleHeaders(ageMs: number, reason: string): Record<string, string> {
  const age = Math.floor(ageMs / 1000);
  return {
    age: String(age),
    warning: '110 kiln "Response is Stale"',
    [KILN_PROXY_HEADERS.stale]: `age=${age}; reason=${JSON.stringify(reason.replace(/[^\x20-\x7e]/g, "?"))}`,
  };
}

/** The registry's failure as the client would have seen it without kiln: its own answer, or a 502. */
export async function answerFailure(res: ServerResponse, url: URL, failure: RegistryFailure, log: Logger): Promise<void> {
  if (failure.answer) return relayAnswer(failure.answer, res, url, log);
  throw new KilnError("ORIGIN_UNREACHABLE", failure.reason, 502);
}

/**
 * Remembers a 200 for the tag: its digest as the registry announces it, checked
 * against the body when it is a GET (a GET without the header is hashed).
 */
function rememberWhileRelaying(req: IncomingMessage, answer: IncomingMessage, key: string, deps: TagDeps): void {
  const announced = headerValue(answer, "docker-content-digest");
  const mediaType = headerValue(answer, "content-type")?.split(";")[0]?.trim();
  const length = Number(headerValue(answer, "content-length") ?? Number.NaN);
  const anonymous = !(req.headers.authorization || req.headers.cookie) ? true : null;
  if (!mediaType) return;
  const remember = (digest: string, size: number) => {
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return;
    deps.learned(deps.memory.remember(key, { digest, mediaType, size, anonymous }), key);
  };
  if (req.method === "HEAD") {
    if (announced && Number.isSafeInteger(length)) remember(announced, length);
    return;
  }
  const hash = createHash("sha256");
  const chunks: Buffer[] = [];
  let size = 0;
  answer.on("data", (chunk: Buffer) => {
    hash.update(chunk);
    size += chunk.length;
    if (size <= PROXY.manifestMaxBytes) chunks.push(chunk);
  });
  answer.on("end", () => {
    if (!answer.complete) return;
    const digest = `sha256:${hash.digest("hex")}`;
    if (announced && announced !== digest) {
      deps.log.warn({ tag: redact(key), announced, digest }, "registry announced another digest than the manifest it sent: not remembered");
      return;
    }
    remember(digest, size);
    if (size <= PROXY.manifestMaxBytes) deps.body(Buffer.concat(chunks), mediaType);
  });
}

function headerValue(answer: IncomingMessage, name: string): string | undefined {
  const v = answer.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
