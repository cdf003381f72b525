/**
 * Wire shapes of pull schedules (the Image Puller, done through the swarm): a list
 * of images kept warm on the peers a node selector picks, every interval. Bundled
 * into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { Labels } from "./peers.js";

/** Images in one schedule, whichever form the list came in. */
export const MAX_PULL_IMAGES = 500;
/** The shortest time between two runs of a schedule (interval_hours and cron alike): each run asks the registry and every node. */
export const MIN_PULL_INTERVAL_MS = 60_000;
const MIN_INTERVAL_HOURS = MIN_PULL_INTERVAL_MS / 3_600_000;

const tooManyImages = (n: number) => `at most ${MAX_PULL_IMAGES} images in one schedule (${n} given)`;

/** An image reference; the peer hands it to `ctr images pull` as an argument, so it may not look like an option. */
export const ImageReference = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[^\s;=]+$/, "must be an image reference like registry:5000/team/app:v1 (no spaces, ';' or '=')")
  .refine((s) => !s.startsWith("-"), "must not start with '-' (ctr would read it as an option)");
const Platform = z.string().regex(/^(?:[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?)?$/, "must be os/arch or os/arch/variant, e.g. linux/amd64");

export const PullImage = z.object({
  /** The Image Puller's container name for it (`NAME` of `NAME=IMAGE`). */
  name: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be letters, digits, '.', '_' or '-'"),
  image: ImageReference,
  platform: Platform.optional(),
});
export type PullImage = z.infer<typeof PullImage>;

/**
 * The Image Puller's `IMAGES` value, `NAME-1=IMAGE-1;NAME-2=IMAGE-2` (whitespace and
 * a trailing `;` allowed, as it reads them); throws with the entry that is wrong.
 */
export function parseImagesList(text: string): PullImage[] {
  const entries = text.split(";");
  const count = entries.filter((e) => e.trim()).length;
  if (count > MAX_PULL_IMAGES) throw new Error(tooManyImages(count));
  const out: PullImage[] = [];
  for (const [i, raw] of entries.entries()) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new Error(`entry ${i + 1} (${JSON.stringify(entry)}) is not NAME=IMAGE`);
    const parsed = PullImage.safeParse({ name: entry.slice(0, eq).trim(), image: entry.slice(eq + 1).trim() });
    if (!parsed.success)
      throw new Error(`entry ${i + 1} (${JSON.stringify(entry)}): ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`);
    out.push(parsed.data);
  }
  return out;
}

/** Either form: the Image Puller's string, or an array with a platform per image (the request body's size bounds both). */
const ImagesInput = z.union([z.string(), z.array(PullImage)]).transform((v, ctx) => {
  if (Array.isArray(v)) {
    if (v.length <= MAX_PULL_IMAGES) return v;
    ctx.addIssue({ code: "custom", message: tooManyImages(v.length) });
    return z.NEVER;
  }
  try {
    return parseImagesList(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

const ScheduleName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "may contain only letters, digits, '.', '_' and '-'");

/** Shared by create and update: every field a schedule has. */
const ScheduleFields = {
  name: ScheduleName,
  bio: z.string().max(1024).optional(),
  images: ImagesInput.refine((l) => l.length > 0, "at least one image"),
  /** Hours between runs (the Image Puller's CACHING_INTERVAL_HOURS); or `cron`. */
  interval_hours: z
    .number()
    .min(MIN_INTERVAL_HOURS, "must be at least 1/60 (one minute): a pull schedule runs at most once a minute")
    .max(24 * 365)
    .optional(),
  /** A cron expression (5 or 6 fields, croner syntax), instead of interval_hours; its runs at least a minute apart. */
  cron: z.string().max(255).optional(),
  /** Peers whose labels include every pair (the Image Puller's NODE_SELECTOR); empty: every peer. */
  node_selector: Labels.optional(),
  /** Registry credentials for every image of the list; sealed at rest, never returned. */
  username: z.string().max(1024).optional(),
  password: z.string().max(1024).optional(),
  /** Registry hosts (`host:port`) spoken to over plain HTTP. */
  insecure_registries: z.array(z.string().max(255)).max(100).optional(),
  /** Images warmed at once. */
  concurrency: z.number().int().min(1).max(100).optional(),
  scheduler_cluster_ids: z.array(z.number().int().min(1)).max(1000).optional(),
  enabled: z.boolean().optional(),
};

export const CreatePullScheduleBody = z
  .object(ScheduleFields, { error: "the body must be a JSON object" })
  .refine((b) => !(b.interval_hours !== undefined && b.cron !== undefined), { path: ["cron"], message: "give interval_hours or cron, not both" });
export type CreatePullScheduleBody = z.infer<typeof CreatePullScheduleBody>;

export const UpdatePullScheduleBody = z.object(ScheduleFields, { error: "the body must be a JSON object" }).partial();
export type UpdatePullScheduleBody = z.infer<typeof UpdatePullScheduleBody>;

export const CellState = z.enum(["warm", "pulling", "failed", "not_selected"]);
export type CellState = z.infer<typeof CellState>;

/** What the last run found: per image its digest (or why it could not be resolved), per image × node its state. */
export const PullStatus = z.object({
  images: z.array(z.object({ name: z.string(), image: z.string(), digest: z.string().nullable(), error: z.string().nullable(), checked_at: z.string() })),
  nodes: z.array(
    z.object({
      host_id: z.string(),
      hostname: z.string(),
      ip: z.string(),
      /** The peer's upload port: with the IP, tells apart hosts that share a hostname and an IP. Absent in statuses stored before it. */
      port: z.number().int().optional(),
      selected: z.boolean(),
      scheduler_cluster_id: z.number().int(),
    }),
  ),
  cells: z.array(z.object({ image: z.string(), host_id: z.string(), state: CellState, reason: z.string().nullable(), checked_at: z.string() })),
});
export type PullStatus = z.infer<typeof PullStatus>;

export const PullScheduleView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  bio: z.string(),
  images: z.array(PullImage),
  interval_hours: z.number().nullable(),
  cron: z.string().nullable(),
  node_selector: Labels,
  /** Credentials are stored (sealed); they are never shown. */
  has_credentials: z.boolean(),
  insecure_registries: z.array(z.string()),
  concurrency: z.number().int(),
  scheduler_cluster_ids: z.array(z.number().int()),
  enabled: z.boolean(),
  /** idle, or running since `last_run_at`. */
  state: z.enum(["idle", "running"]),
  last_run_at: z.string().nullable(),
  next_run_at: z.string().nullable(),
  status: PullStatus.nullable(),
});
export type PullScheduleView = z.infer<typeof PullScheduleView>;
