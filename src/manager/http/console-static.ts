/**
 * The web console at /: the built single-page app (dist/console), its hashed assets
 * cached for good, index.html never, and every client route (/preheats/3, /tokens…)
 * answered with index.html so that a reload or a shared link opens the right page.
 */
import { existsSync } from "node:fs";
import { dirname, join, parse } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyReply, FastifyRequest } from "fastify";
import { CONSOLE_API, OPEN_API } from "../../api/manager-paths.js";
import type { ManagerApp } from "./context.js";

const INDEX = "index.html";
const ASSETS = "/assets/";

/** The page may load only its own scripts and styles, talk only to this origin, and not be framed. */
const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

/**
 * dist/console of the checkout or package this code runs from: found by walking up
 * from this module (src/manager/http under tsx, dist/ or dist/chunks/ when bundled).
 */
export function findBuiltConsole(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "dist", "console");
    if (existsSync(join(candidate, INDEX))) return candidate;
    if (dir === parse(dir).root) return undefined;
  }
}

/** A path the SPA routes itself: not the APIs, not an asset, no file extension. */
function isClientRoute(path: string): boolean {
  if (path.startsWith(`${CONSOLE_API}/`) || path.startsWith(`${OPEN_API}/`) || path.startsWith(ASSETS)) return false;
  return !/\.[A-Za-z0-9]+$/.test(path);
}

export async function serveConsole(app: ManagerApp, dir: string | undefined): Promise<(req: FastifyRequest, reply: FastifyReply) => boolean> {
  if (!dir) {
    app.get("/", { schema: { hide: true } }, async (_req, reply) =>
      reply.type("text/plain; charset=utf-8").send("kiln manager: the web console is not built here (npm run build); the API is at /api/v1 and /oapi/v1\n"),
    );
    return () => false;
  }
  const assetsDir = join(dir, ASSETS);
  await app.register(fastifyStatic, {
    root: dir,
    // Routes for the files present at start; anything else falls through to the SPA fallback or a JSON 404.
    wildcard: false,
    index: false,
    cacheControl: false,
    preCompressed: true,
    schemaHide: true,
    setHeaders: (reply, path) => {
      if (path.startsWith(assetsDir)) reply.header("cache-control", "public, max-age=31536000, immutable");
      else if (path.endsWith(".html")) for (const [k, v] of Object.entries(PAGE_HEADERS)) reply.header(k, v);
      else reply.header("cache-control", "no-cache");
    },
  });
  app.get("/", { schema: { hide: true } }, (_req, reply) => reply.sendFile(INDEX));
  // Used by the not-found handler: true when it answered with the app.
  return (req, reply) => {
    if ((req.method !== "GET" && req.method !== "HEAD") || !isClientRoute(req.url.split("?")[0]!)) return false;
    void reply.sendFile(INDEX);
    return true;
  };
}
