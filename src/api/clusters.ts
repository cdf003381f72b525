/**
 * Wire shapes of scheduler clusters (/oapi/v1/clusters, /api/v1/clusters): their
 * settings, the scopes that decide which peers belong to them, and the cluster as shown
 * with its schedulers and seed peers. Bundled into the web console too, so nothing here
 * may need Node.
 */
import { z } from "zod";
import { ipVersion } from "../common/ip.js";
import { compilesAsRegExp } from "./common.js";
import { ShortString } from "./fields.js";
import { MemberView } from "./members.js";

export const ClusterRef = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
});
export type ClusterRef = z.infer<typeof ClusterRef>;

export const ClusterConfig = z.object({
  /** Jobs per second the cluster accepts (token bucket); 429 beyond. */
  job_rate_limit: z.number().int().min(1).max(100_000),
  /** Parents the cluster's schedulers hand a peer per answer (Dragonfly's candidate_parent_limit, 1–20). */
  candidate_parent_limit: z.number().int().min(1).max(20),
  /** Candidate parents a scheduler samples per selection (Dragonfly's filter_parent_limit, 10–1000). */
  filter_parent_limit: z.number().int().min(10).max(1000),
});
export type ClusterConfig = z.infer<typeof ClusterConfig>;

/** `10.0.0.0/8`, `fd00::/8`: an IP and a prefix length that fits it. */
const Cidr = z.string().refine((s) => {
  const [ip, bits, extra] = s.split("/");
  const v = ipVersion(ip ?? "");
  return extra === undefined && v !== 0 && /^\d{1,3}$/.test(bits ?? "") && Number(bits) <= (v === 4 ? 32 : 128);
}, "must be a CIDR like 10.0.0.0/8 or fd00::/8");

/** A regular expression that compiles (hostnames scope). */
const HostnamePattern = z.string().min(1).max(255).refine(compilesAsRegExp, "must be a regular expression like ^node-[0-9]+$");

/**
 * Which peers belong to a cluster (Dragonfly's scheduler cluster scopes): a peer
 * that asks the manager for its scheduler gets the cluster that matches it best.
 */
export const ClusterScopes = z.object({
  /** IDCs, separated by `|`; a peer whose --idc is one of them matches. */
  idc: z.string().max(1024).default(""),
  /** A location path like `china|hangzhou|zone-a`; a peer's --location matches element by element from the left. */
  location: z.string().max(1024).default(""),
  cidrs: z.array(Cidr).max(1000).default([]),
  hostnames: z.array(HostnamePattern).max(1000).default([]),
});
export type ClusterScopes = z.infer<typeof ClusterScopes>;

export const ClusterView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  bio: z.string(),
  config: ClusterConfig,
  scopes: ClusterScopes,
  is_default: z.boolean(),
  schedulers: z.array(MemberView),
  seed_peers: z.array(MemberView),
});
export type ClusterView = z.infer<typeof ClusterView>;

const ClusterName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9._-]+$/, "may contain only letters, digits, '.', '_' and '-'");

export const CreateClusterBody = z.object({
  name: ClusterName,
  bio: ShortString.optional(),
  config: ClusterConfig.partial().optional(),
  scopes: ClusterScopes.optional(),
  is_default: z.boolean().optional(),
});
export type CreateClusterBody = z.infer<typeof CreateClusterBody>;

export const UpdateClusterBody = CreateClusterBody.partial();
export type UpdateClusterBody = z.infer<typeof UpdateClusterBody>;
