/**
 * Wire shapes of users and their sessions (/api/v1/users, as Dragonfly's manager has
 * them): signing in and out, the session and CSRF cookies, the two roles, creating and
 * changing users and passwords. Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { Id } from "./fields.js";
import { PageQuery } from "./paging.js";

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
  id: Id,
  role: Role,
});

export const SignInBody = z.object({ name: z.string().min(1).max(255), password: z.string().min(1).max(1024) });
/** Dragonfly's answer; the same token is also set as the `jwt` cookie. Who signed in: GET /api/v1/users/me. */
export const SignInReply = z.object({
  token: z.string(),
  /** When the session ends (RFC 3339). */
  expire: z.string(),
});
export type SignInReply = z.infer<typeof SignInReply>;

export const ResetPasswordBody = z.object({
  old_password: z.string().min(1).max(1024),
  new_password: NewPassword,
});

export const UserView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  email: z.string(),
  state: z.string(),
  /** The generated or root-given first password must be changed before anything else works. */
  must_change_password: z.boolean(),
  role: Role,
});
export type UserView = z.infer<typeof UserView>;
