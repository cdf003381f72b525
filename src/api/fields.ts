/**
 * Field schemas several manager resources share (ids, URLs, headers, platforms, piece
 * lengths, timeouts), each with the sentence a user reads when a value is wrong.
 * Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";
import { PIECE } from "../common/defaults.js";
import { GO_DURATION, timeoutSeconds } from "../common/go-duration.js";

export const Id = z.coerce
  .number()
  .int()
  .min(1)
  .max(2 ** 31 - 1);
export const IdParams = z.object({ id: Id });

/** An integer in [min, max], with a message for each way it can be wrong (zod's `error` option would give one for all). */
export function boundedInt(min: number, max: number, opts: { coerce?: boolean; what?: string } = {}) {
  const base = opts.coerce ? z.coerce.number({ error: `must be ${opts.what ?? "a number"}` }) : z.number({ error: `must be ${opts.what ?? "a number"}` });
  const range = `must be an integer from ${min} to ${max}`;
  return base.int(range).min(min, range).max(max, range);
}

export const HttpUrl = z
  .string({ error: "must be a string URL" })
  .max(8192, "must be at most 8192 characters")
  // new URL() silently drops CR, LF and tabs: a URL that has them is not the one the user meant.
  .refine((s) => !/[\u0000-\u0020\u007f]/.test(s), "must not contain spaces or control characters (CR, LF, tab)")
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === "http:" || u.protocol === "https:") && u.hostname.length > 0;
    } catch {
      return false;
    }
  }, "must be an absolute http(s) URL");

const HeaderName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
export const Headers = z
  .record(
    z.string().regex(HeaderName, "header names must be HTTP tokens"),
    z
      .string({ error: "header values must be strings" })
      .max(8192)
      .regex(/^[^\r\n\0]*$/, "header values must not contain CR, LF or NUL"),
    { error: (iss) => (iss.code === "invalid_key" ? "header names must be HTTP tokens" : "must be an object of header names to string values") },
  )
  .refine((h) => Object.keys(h).length <= 100, "at most 100 headers");

export const Platform = z
  .string({ error: "must be a string like linux/amd64" })
  .regex(/^(?:[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?)?$/, "must be os/arch or os/arch/variant, e.g. linux/amd64");

export const PieceLength = z
  .number({ error: "must be a number of bytes" })
  .int("must be an integer number of bytes")
  .min(PIECE.minExplicit, `must be at least ${PIECE.minExplicit} bytes (4 MiB)`)
  .max(PIECE.maxExplicit, `must be at most ${PIECE.maxExplicit} bytes (1024 MiB)`);

export const ShortString = z.string({ error: "must be a string" }).max(1024, "must be at most 1024 characters");

export const Timeout = z
  .union([z.number().positive(), z.string().regex(GO_DURATION, 'must be seconds (a number) or a duration such as "30m"')], {
    error: 'must be seconds (a number) or a duration such as "30m"',
  })
  .refine((v) => {
    const s = timeoutSeconds(v);
    return s >= 1 && s <= 7 * 24 * 3600;
  }, "must be between 1 second and 7 days");

/** The path of an image manifest URL. */
export const MANIFEST_PATH = /^\/v2\/.+\/manifests\/[^/]+$/;

/** Query parameters left out of a task ID (`&`-separated). */
export const FilterParams = z.string({ error: "must be a string like Expires&Signature" }).max(1024, "must be at most 1024 characters");
