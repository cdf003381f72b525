/**
 * Paged lists as Dragonfly's take them: `page` and `per_page` in, a `Link` header and
 * the total count out; and reading that `Link` header back (the console and tests).
 * Bundled into the web console too, so nothing here may need Node.
 */
import { z } from "zod";

const range = (min: number, max: number) => `must be an integer from ${min} to ${max}`;
const pageNumber = z.coerce.number({ error: "must be a page number" }).int(range(1, 1_000_000)).min(1, range(1, 1_000_000)).max(1_000_000, range(1, 1_000_000));
const perPage = z.coerce.number({ error: "must be a number" }).int(range(1, 100)).min(1, range(1, 100)).max(100, range(1, 100));

/** `page` (from 1) and `per_page` (1..100, default 10), as Dragonfly's lists take them; the answer has a `Link` header. */
export const PageQuery = z.object({ page: pageNumber.default(1), per_page: perPage.default(10) });
export type PageQuery = z.infer<typeof PageQuery>;

/** Total number of items of a paged list, beside the `Link` header. */
export const TOTAL_COUNT_HEADER = "x-total-count";

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
