/** Link headers for paged lists, as Dragonfly writes them. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { TOTAL_COUNT_HEADER } from "../../api/paging.js";

export function linkHeader(req: FastifyRequest, page: number, perPage: number, total: number): string {
  const last = Math.max(1, Math.ceil(total / perPage));
  const [path, query = ""] = req.url.split("?");
  const link = (p: number, rel: string) => {
    const q = new URLSearchParams(query);
    q.delete("access_token"); // never echo a credential
    q.set("page", String(p));
    q.set("per_page", String(perPage));
    return `<${path}?${q.toString()}>;rel=${rel}`;
  };
  const links = [link(Math.max(1, page - 1), "prev"), link(Math.min(last, page + 1), "next"), link(1, "first"), link(last, "last")];
  return links.join(",");
}

/** Sets a paged list's `Link` and `X-Total-Count` headers. */
export function pageHeaders(req: FastifyRequest, reply: FastifyReply, q: { page: number; per_page: number }, total: number): void {
  reply.header("link", linkHeader(req, q.page, q.per_page, total));
  reply.header(TOTAL_COUNT_HEADER, String(total));
}
