/** The manager's HTTP server: Open API, console API and the console itself, membership API, OpenAPI documents. */
import Fastify, { LogController, type FastifyBaseLogger } from "fastify";
import swagger from "@fastify/swagger";
import cookie from "@fastify/cookie";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { CONSOLE_API, MANAGER_PATHS, OPEN_API, ReadinessReply } from "../../api/manager-paths.js";
import type { RouteContext, ManagerApp } from "./context.js";
import { managerErrorHandler } from "./errors.js";
import { useLenientJson } from "./json-body.js";
import { registerJobRoutes } from "./jobs-routes.js";
import { registerClusterRoutes } from "./clusters-routes.js";
import { registerRegistrationRoutes } from "./registration-routes.js";
import { registerPeerRoutes } from "./peers-routes.js";
import { registerPullScheduleRoutes } from "./puller-routes.js";
import { registerMemberListRoutes } from "./members-list-routes.js";
import { registerUserRoutes } from "./users-routes.js";
import { registerTokenRoutes } from "./tokens-routes.js";
import { serveConsole } from "./console-static.js";
import { registerAccelerateRoutes } from "./accelerate-routes.js";

const BODY_LIMIT = 1024 * 1024;

/** The generated document, cut to the routes under one prefix. */
function documentOf(all: Record<string, unknown>, prefix: string, title: string, description: string) {
  const paths = Object.fromEntries(Object.entries((all.paths ?? {}) as Record<string, unknown>).filter(([p]) => p.startsWith(`${prefix}/`)));
  return { ...all, info: { ...(all.info as object), title, description }, paths };
}

export async function buildManagerApi(ctx: RouteContext): Promise<ManagerApp> {
  const app = Fastify({
    loggerInstance: ctx.log as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  useLenientJson(app, BODY_LIMIT);
  app.setErrorHandler(managerErrorHandler);
  await app.register(cookie);

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "kiln manager Open API", description: "Dragonfly-compatible Open API: preheat jobs and scheduler clusters.", version: "1" },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "personal access token (scope job or cluster); on /api/v1 a session token" },
          access_token: { type: "apiKey", in: "query", name: "access_token" },
          jwt_cookie: { type: "apiKey", in: "cookie", name: "jwt", description: "console session; writes also need the X-CSRF-Token header" },
        },
      },
      security: [{ bearer: [] }, { access_token: [] }, { jwt_cookie: [] }],
    },
    // The Open API and the console API are documented; the membership routes schedulers and seed peers call are internal.
    transform: (doc) => {
      const internal = (doc.schema as { tags?: readonly string[] } | undefined)?.tags?.includes("members");
      const documented = doc.url.startsWith(`${OPEN_API}/`) || doc.url.startsWith(`${CONSOLE_API}/`);
      return documented && !internal ? jsonSchemaTransform(doc) : { schema: { hide: true }, url: doc.url };
    },
  });

  app.get(MANAGER_PATHS.health, { schema: { hide: true } }, async () => ({ ok: true as const }));
  app.get(MANAGER_PATHS.ready, { schema: { hide: true, response: { 200: ReadinessReply, 503: ReadinessReply } } }, async (_req, reply) => {
    const report = await ctx.readiness.report();
    return reply.status(report.ready ? 200 : 503).send(report);
  });
  app.get(MANAGER_PATHS.openapi, { schema: { hide: true } }, async () =>
    documentOf(
      app.swagger() as Record<string, unknown>,
      OPEN_API,
      "kiln manager Open API",
      "Dragonfly-compatible Open API: preheat jobs and scheduler clusters.",
    ),
  );
  app.get(MANAGER_PATHS.consoleOpenapi, { schema: { hide: true } }, async () =>
    documentOf(
      app.swagger() as Record<string, unknown>,
      CONSOLE_API,
      "kiln manager console API",
      "The web console's API (Dragonfly manager's /api/v1 where it has the route): sessions by cookie or Bearer, users and roles, tokens, clusters, jobs, members.",
    ),
  );
  registerJobRoutes(app, ctx);
  registerClusterRoutes(app, ctx);
  registerUserRoutes(app, ctx);
  registerTokenRoutes(app, ctx);
  registerRegistrationRoutes(app, ctx);
  registerPeerRoutes(app, ctx);
  registerPullScheduleRoutes(app, ctx);
  registerAccelerateRoutes(app, ctx);
  registerMemberListRoutes(app, ctx);
  const spaFallback = await serveConsole(app, ctx.consoleDir);
  app.setNotFoundHandler((req, reply) => {
    if (spaFallback(req, reply)) return;
    return reply.status(404).send({ message: `no route for ${req.method} ${req.url.split("?")[0]}` });
  });
  return app;
}
