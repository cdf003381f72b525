/**
 * Wire shapes of the console API (/api/v1) that Dragonfly's manager also has: users
 * and their roles, paged lists, schedulers and seed peers as lists. Re-exported by
 * manager.ts; bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";

/** The session cookie, named as Dragonfly's manager names it. */
export const SESSION_COOKIE = "jwt";
/**
 * Cookie-authenticated writes must echo this cookie's value in the header below.
 * The value is derived from the session token, so another site can neither read nor forge it.
 */
export const CSRF_COOKIE = "csrf_token";
export const CSRF_HEADER = "x-csrf-token";

/** Dragonfly's two built-in roles: root may change anything, guest may only read. */
export const Role = z.enum(["root", "guest"]);
export type Role = z.infer<typeof Role>;

const range = (min: number, max: number) => `must be an integer from ${min} to ${max}`;
const pageNumber = z.coerce.number({ error: "must be a page number" }).int(range(1, 1_000_000)).min(1, range(1, 1_000_000)).max(1_000_000, range(1, 1_000_000));
const perPage = z.coerce.number({ error: "must be a number" }).int(range(1, 100)).min(1, range(1, 100)).max(100, range(1, 100));

/** `page` (from 1) and `per_page` (1..100, default 10), as Dragonfly's lists take them; the answer has a `Link` header. */
export const PageQuery = z.object({ page: pageNumber.default(1), per_page: perPage.default(10) });
export type PageQuery = z.infer<typeof PageQuery>;

/** Total number of items of a paged list, beside the `Link` header. */
export const TOTAL_COUNT_HEADER = "x-total-count";

export const UserState = z.enum(["active", "inactive"]);

export const ListUsersQuery = PageQuery.extend({ name: z.string().max(255).optional() });

export const UserName = z
  .string({ error: "must be a string" })
  .min(1, "must not be empty")
  .max(255, "must be at most 255 characters")
  .regex(/^[A-Za-z0-9._@-]+$/, "may contain only letters, digits, '.', '_', '@' and '-'");

export const NewPassword = z.string({ error: "must be a string" }).min(8, "must be at least 8 characters").max(1024, "must be at most 1024 characters");

export const CreateUserBody = z.object({
  name: UserName,
  email: z.union([z.literal(""), z.email("must be an email address")]).optional(),
  /** The first password; the user must change it at first sign-in. */
  password: NewPassword,
  role: Role.optional(),
});
export type CreateUserBody = z.infer<typeof CreateUserBody>;

export const UpdateUserBody = z.object({
  email: z.union([z.literal(""), z.email("must be an email address")]).optional(),
  state: UserState.optional(),
});
export type UpdateUserBody = z.infer<typeof UpdateUserBody>;

export const RoleParams = z.object({
  id: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 31 - 1),
  role: Role,
});

/** Schedulers or seed peers of every cluster, or of one. */
export const ListMembersQuery = PageQuery.extend({
  scheduler_cluster_id: z.coerce.number().int().min(1).optional(),
  /** Part of the host name or IP address. */
  hostname: z.string().max(255).optional(),
  state: z.enum(["active", "inactive"]).optional(),
});
export type ListMembersQuery = z.infer<typeof ListMembersQuery>;

/** Reads a Dragonfly `Link` header (`<url>;rel=next,<url>;rel=last`) into rel → page number. */
export function parseLinkPages(header: string | null): Partial<Record<"prev" | "next" | "first" | "last", number>> {
  const out: Partial<Record<"prev" | "next" | "first" | "last", number>> = {};
  for (const part of (header ?? "").split(",")) {
    const m = /<([^>]*)>\s*;\s*rel="?(prev|next|first|last)"?/.exec(part);
    const page = m && new URLSearchParams(m[1]!.split("?")[1] ?? "").get("page");
    if (m && page) out[m[2] as "prev"] = Number(page);
  }
  return out;
}
