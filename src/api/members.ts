/**
 * Wire shapes of the schedulers and seed peers a manager knows, as the console API lists
 * them (/api/v1/schedulers, /api/v1/seed-peers). How they register and keep alive is in
 * registration.ts. Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { PageQuery } from "./paging.js";

export const MemberState = z.enum(["active", "inactive"]);

export const MemberView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  hostname: z.string(),
  ip: z.string(),
  port: z.number().int(),
  url: z.string(),
  type: z.string(),
  state: MemberState,
  last_keepalive_at: z.string(),
  scheduler_cluster_id: z.number().int(),
  /**
   * Schedulers only: the tasks it holds (with a peer on them) as it answered the
   * manager just now; null when it did not answer (inactive, or unreachable).
   * A cluster's tasks are spread over its schedulers by hashing their IDs.
   */
  tasks: z.number().int().min(0).nullable().optional(),
});
export type MemberView = z.infer<typeof MemberView>;

/** Schedulers or seed peers of every cluster, or of one. */
export const ListMembersQuery = PageQuery.extend({
  scheduler_cluster_id: z.coerce.number().int().min(1).optional(),
  /** Part of the host name or IP address. */
  hostname: z.string().max(255).optional(),
  state: z.enum(["active", "inactive"]).optional(),
});
export type ListMembersQuery = z.infer<typeof ListMembersQuery>;
