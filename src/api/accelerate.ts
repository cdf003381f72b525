/**
 * Image acceleration: the `get` answer (the seed's field names), the state kept on the
 * shared directory, and each node's report of what its snapshotter mounts from there.
 */
import { z } from "zod";
import { Digest } from "./common.js";

export const AccelerateStatus = z.enum(["Ready", "Creating", "CreateError", "Deleting", "DeleteError", "Unknown"]);
export type AccelerateStatus = z.infer<typeof AccelerateStatus>;

/** One accelerated image as `get` lists it. */
export const AcceleratedImageView = z.object({
  OriginalImage: z.string(),
  TargetImage: z.string(),
  /** Size of the original image: its layers and config as stored in the registry (compressed). */
  Size: z.number().int().min(0),
  Layers: z.number().int().min(0),
});
export type AcceleratedImageView = z.infer<typeof AcceleratedImageView>;

export const AccelerateView = z.object({
  Enable: z.boolean(),
  /** The shared directory is a mounted filesystem, and writable. */
  NfsReady: z.boolean(),
  /** At least one node's snapshotter has reported recently. */
  AgentReady: z.boolean(),
  Status: AccelerateStatus,
  Error: z.string(),
  /** Empty while an image is being created or deleted, and while no snapshotter is up (as the seed). */
  Images: z.array(AcceleratedImageView),
  SharedDir: z.string(),
  /** Nodes whose snapshotter reported recently: the ones that can mount accelerated images. */
  Nodes: z.array(z.string()),
});
export type AccelerateView = z.infer<typeof AccelerateView>;

/** An accelerated image as kept in the state file. */
export const AcceleratedImage = z.object({
  original: z.string(),
  target: z.string(),
  size: z.number().int().min(0),
  /** Chain IDs of its layers, bottom first (the directories under layers/). */
  chainIds: z.array(Digest),
  manifestDigest: Digest,
  targetDigest: Digest,
  createdAt: z.string(),
});
export type AcceleratedImage = z.infer<typeof AcceleratedImage>;

export const AccelerateState = z.object({
  enabled: z.boolean(),
  images: z.array(AcceleratedImage),
  /** The last create or delete that failed (cleared by the next one that succeeds). */
  lastError: z.object({ kind: z.enum(["create", "delete"]), image: z.string(), message: z.string() }).optional(),
});
export type AccelerateState = z.infer<typeof AccelerateState>;

/** The operation running now (the lock file's content). */
export const AccelerateOperation = z.object({
  kind: z.enum(["create", "delete"]),
  image: z.string(),
  host: z.string(),
  pid: z.number().int(),
  startedAt: z.string(),
});
export type AccelerateOperation = z.infer<typeof AccelerateOperation>;

/** What a node's snapshotter mounts from the shared directory: written by it to nodes/<node>.json. */
export const NodeReport = z.object({
  node: z.string(),
  updatedAt: z.string(),
  /** Per shared layer in use: the snapshots that use it (the layer's own committed snapshot = the image is pulled; active ones = containers). */
  layers: z.array(
    z.object({
      chainId: Digest,
      snapshots: z.array(z.object({ name: z.string(), kind: z.enum(["ACTIVE", "VIEW", "COMMITTED"]) })),
    }),
  ),
});
export type NodeReport = z.infer<typeof NodeReport>;

/* ------------------------------------------------------- manager routes */

/** The same routes under the Open API (token scope `job`) and the console API (session). */
export const ACCELERATE_PATHS = {
  openApi: "/oapi/v1/image-accelerate",
  console: "/api/v1/image-accelerate",
} as const;

const ImageNameField = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\s]+$/, "an image name such as registry.example.com/team/app:v1");

export const CreateAccelerationBody = z.object({
  original: ImageNameField,
  /** Default: the original's tag with `-acc`. */
  target: ImageNameField.optional(),
  /** The registry speaks plain HTTP. */
  plain_http: z.boolean().default(false),
  /** os/arch[/variant]; default linux/amd64. */
  platform: z
    .string()
    .regex(/^[a-z0-9]+\/[a-z0-9]+(\/[a-z0-9]+)?$/)
    .optional(),
  /** A kiln peer's proxy to fetch the layers through (P2P). */
  mirror: z.string().url().optional(),
  username: z.string().max(256).optional(),
  /** Used for this create only; never stored or logged. */
  password: z.string().max(4096).optional(),
});
export type CreateAccelerationBody = z.infer<typeof CreateAccelerationBody>;

const Flag = z.union([z.boolean(), z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1")]).default(false);

export const DeleteAccelerationQuery = z.object({ original: ImageNameField, force: Flag });
export const ForceBody = z.object({ force: z.boolean().default(false) });
