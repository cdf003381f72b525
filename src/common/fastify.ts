import Fastify, { LogController, type FastifyInstance, type FastifyError } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import type { Logger } from "./logger.js";
import { KilnError } from "./errors.js";

/**
 * A fastify instance whose every error, including malformed JSON, validation
 * failures and unknown routes, is answered as `{"message": ..., "code": ...}`.
 */
export function createJsonApi(logger: Logger, opts: { bodyLimit?: number } = {}) {
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: opts.bodyLimit ?? 4 * 1024 * 1024,
    // sha512 blob task IDs are 128 hex characters.
    routerOptions: { maxParamLength: 256 },
    // Per-request log lines would drown a scheduler polled by every peer.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof KilnError) return reply.status(err.status).send({ message: err.message, code: err.code });
    if (err.validation) {
      const where = err.validationContext ?? "request";
      const details = err.validation.map((v) => `${where}${v.instancePath ? v.instancePath.replaceAll("/", ".") : ""}: ${v.message ?? "invalid"}`).join("; ");
      return reply.status(400).send({ message: details, code: "BAD_REQUEST" });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ message: err.message, code: err.code ?? "BAD_REQUEST" });
    }
    req.log.error({ err }, "unhandled error");
    return reply.status(500).send({ message: "internal error", code: "INTERNAL" });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ message: `no route for ${req.method} ${req.url.split("?")[0]}`, code: "NOT_FOUND" }));
  return app;
}

export type JsonApi = ReturnType<typeof createJsonApi>;
export type { FastifyInstance };
