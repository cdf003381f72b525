/** Job args: from what clients send, to what kiln stores, to what responses show. */
import { z } from "zod";
import { timeoutSeconds } from "../../common/go-duration.js";
import type { CreateJobBody } from "../../api/jobs.js";
import type { PreheatArgsInput, PreheatArgsView, StoredPreheatArgs } from "../../api/preheat.js";
import type { TaskJobArgs } from "../../api/tasks.js";
import { PREHEAT_DEFAULTS } from "../defaults.js";
import { splitCredentialHeaders, splitUserInfo } from "../../common/credentials.js";

/**
 * A job's credentials: registry username/password, credential-bearing headers and
 * URL user-info. Sealed at rest, used while the job runs, never shown.
 */
export const JobSecret = z.object({
  username: z.string().optional(),
  password: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  /** URL as stored (without user-info) → the user-info it was given with. */
  userInfo: z.record(z.string(), z.string()).optional(),
});
export type JobSecret = z.infer<typeof JobSecret>;

export function normalizeArgs(a: PreheatArgsInput): { stored: StoredPreheatArgs; secret: JobSecret } {
  const secret: JobSecret = {};
  const clean = (url: string) => {
    const { url: bare, userInfo } = splitUserInfo(url);
    if (userInfo) secret.userInfo = { ...secret.userInfo, [bare]: userInfo };
    return bare;
  };
  const stored: StoredPreheatArgs = { type: a.type, url: clean(a.url ?? "") };
  const set = <K extends keyof StoredPreheatArgs>(k: K, v: StoredPreheatArgs[K] | undefined | null) => {
    if (v !== undefined && v !== null) stored[k] = v;
  };
  set("urls", a.urls?.map(clean));
  set("filteredQueryParams", a.filteredQueryParams ?? a.filtered_query_params);
  if (a.headers) {
    const { plain, credentials } = splitCredentialHeaders(a.headers);
    stored.headers = plain;
    if (Object.keys(credentials).length) secret.headers = credentials;
  } else if (a.headers === null) stored.headers = null;
  set("pieceLength", a.pieceLength ?? a.piece_length);
  set("platform", a.platform);
  set("tag", a.tag);
  set("application", a.application);
  set("scope", a.scope);
  set("ips", a.ips);
  set("count", a.count);
  set("percentage", a.percentage);
  set("concurrent_task_count", a.concurrent_task_count);
  set("concurrent_peer_count", a.concurrent_peer_count);
  if (a.timeout !== undefined) stored.timeout = timeoutSeconds(a.timeout);
  if (a.username) secret.username = a.username;
  if (a.password) secret.password = a.password;
  return { stored, secret };
}

export function viewArgs(s: StoredPreheatArgs): PreheatArgsView {
  return {
    ...(s.application !== undefined ? { application: s.application } : {}),
    ...(s.concurrent_peer_count !== undefined ? { concurrent_peer_count: s.concurrent_peer_count } : {}),
    ...(s.concurrent_task_count !== undefined ? { concurrent_task_count: s.concurrent_task_count } : {}),
    ...(s.count !== undefined ? { count: s.count } : {}),
    filteredQueryParams: s.filteredQueryParams ?? PREHEAT_DEFAULTS.filteredQueryParams,
    headers: s.headers ?? null,
    ...(s.ips !== undefined ? { ips: s.ips } : {}),
    password: PREHEAT_DEFAULTS.password,
    ...(s.percentage !== undefined ? { percentage: s.percentage } : {}),
    pieceLength: s.pieceLength ?? PREHEAT_DEFAULTS.pieceLength,
    platform: s.platform ?? PREHEAT_DEFAULTS.platform,
    ...(s.scope !== undefined ? { scope: s.scope } : {}),
    tag: s.tag ?? PREHEAT_DEFAULTS.tag,
    ...(s.timeout !== undefined ? { timeout: s.timeout } : {}),
    type: s.type,
    url: s.url,
    ...(s.urls !== undefined ? { urls: s.urls } : {}),
    username: PREHEAT_DEFAULTS.username,
  };
}

/** The URLs a job names (`url` then `urls`), without repeats. */
export function argUrls(s: StoredPreheatArgs): string[] {
  return [...new Set([s.url, ...(s.urls ?? [])].filter((u) => u.length > 0))];
}

/** get_task / delete_task / get_image_distribution args, stored without credentials. */
export function normalizeTaskArgs(body: Exclude<CreateJobBody, { type: "preheat" }>): { stored: TaskJobArgs; secret: JobSecret } {
  const secret: JobSecret = {};
  const stored: TaskJobArgs = {};
  if (body.args.timeout !== undefined) stored.timeout = timeoutSeconds(body.args.timeout);
  if (body.type === "sync_peers") return { stored, secret };
  const a = body.args;
  if ("task_id" in a && a.task_id) stored.task_id = a.task_id;
  if (a.url) {
    const { url, userInfo } = splitUserInfo(a.url);
    stored.url = url;
    if (userInfo) secret.userInfo = { [url]: userInfo };
  }
  if (a.tag) stored.tag = a.tag;
  if (a.application) stored.application = a.application;
  const filter = a.filteredQueryParams ?? a.filtered_query_params;
  if (filter) stored.filteredQueryParams = filter;
  const pieceLength = a.pieceLength ?? a.piece_length;
  if (pieceLength !== undefined && pieceLength !== null) stored.pieceLength = pieceLength;
  if (body.type === "get_image_distribution") {
    const img = body.args;
    if (img.platform) stored.platform = img.platform;
    if (img.headers) {
      const { plain, credentials } = splitCredentialHeaders(img.headers);
      if (Object.keys(plain).length) stored.headers = plain;
      if (Object.keys(credentials).length) secret.headers = credentials;
    }
    if (img.username) secret.username = img.username;
    if (img.password) secret.password = img.password;
  }
  return { stored, secret };
}
