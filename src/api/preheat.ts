/**
 * Wire shapes of a preheat job: its `args` as clients send them, as kiln stores them and
 * as it shows them, and the live progress per URL and host in its result. The job
 * around them is in jobs.ts. Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { ipVersion } from "../common/ip.js";
import { PreheatScope } from "./scheduler.js";
import { boundedInt, Headers, HttpUrl, MANIFEST_PATH, PieceLength, Platform, ShortString, Timeout } from "./fields.js";

/** Preheat `args` as clients send them: Dragonfly's camelCase and snake_case spellings both accepted. */
export const PreheatArgsInput = z
  .object(
    {
      type: z.enum(["image", "file"], { error: 'must be "image" or "file"' }),
      url: HttpUrl.optional(),
      urls: z.array(HttpUrl, { error: "must be an array of URLs" }).max(1000, "at most 1000 URLs").optional(),
      filteredQueryParams: z.string({ error: "must be a string like Expires&Signature" }).max(1024, "must be at most 1024 characters").optional(),
      filtered_query_params: z.string({ error: "must be a string like Expires&Signature" }).max(1024, "must be at most 1024 characters").optional(),
      headers: Headers.nullable().optional(),
      username: ShortString.optional(),
      password: ShortString.optional(),
      pieceLength: PieceLength.nullable().optional(),
      piece_length: PieceLength.nullable().optional(),
      platform: Platform.optional(),
      tag: ShortString.optional(),
      application: ShortString.optional(),
      scope: PreheatScope.optional(),
      ips: z
        .array(
          z.string().refine((s) => ipVersion(s) !== 0, "must be an IP address"),
          { error: "must be an array of IP addresses" },
        )
        .max(1000)
        .optional(),
      count: boundedInt(1, 100_000).optional(),
      percentage: boundedInt(1, 100).optional(),
      concurrent_task_count: boundedInt(1, 1000).optional(),
      concurrent_peer_count: boundedInt(1, 10_000).optional(),
      timeout: Timeout.optional(),
    },
    { error: "must be an object" },
  )
  .superRefine((a, ctx) => {
    if (!a.url && !a.urls?.length) ctx.addIssue({ code: "custom", path: ["url"], message: "url (or urls) is required" });
    if (a.type === "image") {
      for (const [i, u] of [a.url, ...(a.urls ?? [])].entries()) {
        if (u && !MANIFEST_PATH.test(new URL(u).pathname)) {
          ctx.addIssue({
            code: "custom",
            path: i === 0 ? ["url"] : ["urls", i - 1],
            message: "an image URL must look like https://<registry>/v2/<repository>/manifests/<tag or digest>",
          });
        }
      }
    }
  });
export type PreheatArgsInput = z.infer<typeof PreheatArgsInput>;

/**
 * `args` as kiln stores them: canonical spelling, no credentials, defaults not filled
 * in (an explicit pieceLength is part of the task ID, a default one is not).
 */
export const StoredPreheatArgs = z.object({
  type: z.enum(["image", "file"]),
  url: z.string(),
  urls: z.array(z.string()).optional(),
  filteredQueryParams: z.string().optional(),
  headers: z.record(z.string(), z.string()).nullable().optional(),
  pieceLength: z.number().int().optional(),
  platform: z.string().optional(),
  tag: z.string().optional(),
  application: z.string().optional(),
  scope: PreheatScope.optional(),
  ips: z.array(z.string()).optional(),
  count: z.number().int().optional(),
  percentage: z.number().int().optional(),
  concurrent_task_count: z.number().int().optional(),
  concurrent_peer_count: z.number().int().optional(),
  /** Seconds. */
  timeout: z.number().optional(),
});
export type StoredPreheatArgs = z.infer<typeof StoredPreheatArgs>;

/** `args` in responses: defaults filled in, keys in Dragonfly's (alphabetical) order; registry credentials never come back (as in Dragonfly's Open API documentation). */
export const PreheatArgsView = z.object({
  application: z.string().optional(),
  concurrent_peer_count: z.number().int().optional(),
  concurrent_task_count: z.number().int().optional(),
  count: z.number().int().optional(),
  filteredQueryParams: z.string(),
  headers: z.record(z.string(), z.string()).nullable(),
  ips: z.array(z.string()).optional(),
  password: z.literal(""),
  percentage: z.number().int().optional(),
  pieceLength: z.number().int(),
  platform: z.string(),
  scope: PreheatScope.optional(),
  tag: z.string(),
  timeout: z.number().optional(),
  type: z.enum(["image", "file"]),
  url: z.string(),
  urls: z.array(z.string()).optional(),
  username: z.literal(""),
});
export type PreheatArgsView = z.infer<typeof PreheatArgsView>;

/** Where one host stands with one preheated URL, as its scheduler last reported it. */
export const HostProgress = z.object({
  hostname: z.string(),
  ip: z.string(),
  /** Upload port, when the scheduler reported it. */
  port: z.number().int().optional(),
  host_type: z.enum(["normal", "super"]).optional(),
  /** queued: asked, not started; fetching: registered, getting pieces (from_origin: from the origin itself). */
  state: z.enum(["queued", "fetching", "succeeded", "failed"]),
  from_origin: z.boolean().optional(),
  finished_pieces: z.number().int(),
  bytes_done: z.number().int(),
  /** Bytes per second over the last few seconds. */
  rate_bps: z.number(),
  error: z.string().optional(),
});
export type HostProgress = z.infer<typeof HostProgress>;

/** One URL on one cluster: its size once the origin answered, and every host asked. */
export const UrlProgress = z.object({
  url: z.string(),
  task_id: z.string(),
  scheduler_cluster_id: z.number().int(),
  state: z.enum(["pending", "running", "succeeded", "failed"]),
  content_length: z.number().int().nullable(),
  total_pieces: z.number().int().nullable(),
  /** Summed over the hosts asked; the totals are the content times the hosts (null until the size is known). */
  bytes_done: z.number().int(),
  bytes_total: z.number().int().nullable(),
  pieces_done: z.number().int(),
  pieces_total: z.number().int().nullable(),
  rate_bps: z.number(),
  hosts_fetching: z.number().int(),
  hosts: z.array(HostProgress),
});
export type UrlProgress = z.infer<typeof UrlProgress>;
