/**
 * Wire shapes of personal access tokens (/api/v1/personal-access-tokens): what a token
 * may do (its scopes), creating, changing and showing one. Bundled into the web console
 * too, so nothing here may need Node.
 */
import { z } from "zod";
import { ShortString } from "./fields.js";

export const TokenScope = z.enum(["job", "cluster"]);
export type TokenScope = z.infer<typeof TokenScope>;

export const TokenState = z.enum(["active", "inactive"]);

export const CreateTokenBody = z.object({
  name: z.string().min(1).max(255),
  bio: ShortString.optional(),
  scopes: z.array(TokenScope).min(1, "at least one scope").max(2),
  /** ISO-8601 time; default one year from now. */
  expired_at: z.iso.datetime({ offset: true, error: "must be an ISO-8601 time, e.g. 2030-01-01T00:00:00Z" }).optional(),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBody>;

export const UpdateTokenBody = z.object({
  name: z.string().min(1).max(255).optional(),
  bio: ShortString.optional(),
  state: TokenState.optional(),
  expired_at: z.iso.datetime({ offset: true }).optional(),
});

export const TokenView = z.object({
  id: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  bio: z.string(),
  scopes: z.array(TokenScope),
  state: TokenState,
  expired_at: z.string(),
  user_id: z.number().int(),
  /** Only in the reply that created the token; never again. */
  token: z.string().optional(),
});
export type TokenView = z.infer<typeof TokenView>;
