/** The manager's HTTP server: Open API, console API, membership API, OpenAPI document. */
import Fastify, { LogController, type FastifyBaseLogger } from "fastify";
import swagger from "@fastify/swagger";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { MANAGER_PATHS, OPEN_API } from "../../api/manager.js";
import type { RouteContext, ManagerApp } from "./context.js";
import { managerErrorHandler } from "./errors.js";
import { useLenientJson } from "./json-body.js";
import { registerJobRoutes } from "./jobs-routes.js";
import { registerClusterRoutes } from "./clusters-routes.js";
import { registerMemberRoutes } from "./members-routes.js";
import { registerUserRoutes } from "./users-routes.js";
import { registerAccelerateRoutes } from "../../accelerate/http-routes.js";

const BODY_LIMIT = 1024 * 1024;

export async function buildManagerApi(ctx: RouteContext): Promise<ManagerApp> {
  const app = Fastify({ loggerInstance: ctx.log as FastifyBaseLogger, bodyLimit: BODY_LIMIT, logController: new LogController({ disableRequestLogging: true }) }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  useLenientJson(app, BODY_LIMIT);
  app.setErrorHandler(managerErrorHandler);
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ message: `no route for ${req.method} ${req.url.split("?")[0]}` }));

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "kiln manager Open API", description: "Dragonfly-compatible Open API: preheat jobs and scheduler clusters.", version: "1" },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "personal access token (scope job or cluster)" },
          access_token: { type: "apiKey", in: "query", name: "access_token" },
        },
      },
      security: [{ bearer: [] }, { access_token: [] }],
    },
    // Only the Open API is documented; console and membership routes are internal.
    transform: (doc) => (doc.url.startsWith(`${OPEN_API}/`) ? jsonSchemaTransform(doc) : { schema: { hide: true }, url: doc.url }),
  });

  app.get(MANAGER_PATHS.health, { schema: { hide: true } }, async () => ({ ok: true as const }));
  app.get(MANAGER_PATHS.openapi, { schema: { hide: true } }, async () => app.swagger());
  registerJobRoutes(app, ctx);
  registerClusterRoutes(app, ctx);
  registerUserRoutes(app, ctx);
  registerMemberRoutes(app, ctx);
  registerAccelerateRoutes(app, ctx);
  return app;
}
