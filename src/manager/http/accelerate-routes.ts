/**
 * Image acceleration on the manager: the seed's enable/get/create/delete/disable as
 * Open API routes (personal access token with scope `job`: accelerating an image is
 * the same kind of work as preheating one) and console API routes (signed-in user).
 * The state stays on the shared directory, which the manager mounts at
 * KILN_ACCELERATE_SHARED (default /mnt/kiln-shared), so the CLI on any node sees the same.
 */
import type { FastifyRequest } from "fastify";
import { ACCELERATE_PATHS, AccelerateView, CreateAccelerationBody, DeleteAccelerationQuery, ForceBody } from "../../api/accelerate.js";
import { SNAPSHOTTER } from "../../common/defaults.js";
import type { ManagerApp, RouteContext } from "./context.js";
import { errorResponses } from "./errors.js";
import * as accelerate from "../../accelerate/service.js";

/** Read per request, so a test or an operator can point a running manager elsewhere. */
export function managerSharedDir(): string {
  return process.env.KILN_ACCELERATE_SHARED || SNAPSHOTTER.shared;
}

const errors = errorResponses(401, 403, 404, 409, 422);

export function registerAccelerateRoutes(app: ManagerApp, ctx: RouteContext): void {
  const variants = [
    { base: ACCELERATE_PATHS.openApi, tags: ["image-accelerate"], onRequest: async (req: FastifyRequest) => void (await ctx.auth.pat(req, "job")) },
    { base: ACCELERATE_PATHS.console, tags: ["console"], onRequest: async (req: FastifyRequest) => void (await ctx.auth.session(req)) },
  ];
  for (const { base, tags, onRequest } of variants) {
    app.get(
      base,
      {
        onRequest,
        schema: {
          summary: "Image acceleration state (Enable, NfsReady, AgentReady, Status, Error, Images)",
          tags,
          response: { 200: AccelerateView, ...errors },
        },
      },
      async () => accelerate.getView(managerSharedDir()),
    );
    app.post(
      `${base}/enable`,
      { onRequest, schema: { summary: "Check the shared directory and turn acceleration on", tags, response: { 200: AccelerateView, ...errors } } },
      async () => accelerate.enable(managerSharedDir()),
    );
    app.post(
      `${base}/disable`,
      {
        onRequest,
        schema: {
          summary: "Turn acceleration off (409 while nodes use accelerated layers, unless force)",
          tags,
          body: ForceBody.optional(),
          response: { 200: AccelerateView, ...errors },
        },
      },
      async (req) => accelerate.disable(managerSharedDir(), req.body?.force ?? false),
    );
    app.post(
      `${base}/images`,
      {
        onRequest,
        schema: {
          summary: "Create a target image: unpack the original onto the shared directory, push <original>-acc (runs in the background; Status Creating)",
          tags,
          body: CreateAccelerationBody,
          response: { 202: AccelerateView, ...errors },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const shared = managerSharedDir();
        const { done } = await accelerate.startCreate({
          original: b.original,
          target: b.target,
          shared,
          plainHttp: b.plain_http,
          platform: b.platform,
          mirror: b.mirror,
          username: b.username,
          password: b.password,
          log: ctx.log,
        });
        // The outcome is recorded in the state (Ready, or CreateError with Error).
        done.catch((err: Error) => ctx.log.warn({ event: "accelerate-create-failed", original: b.original, err: err.message }, "image acceleration failed"));
        return reply.status(202).send(await accelerate.getView(shared));
      },
    );
    app.delete(
      `${base}/images`,
      {
        onRequest,
        schema: {
          summary: "Delete an accelerated image's layers (409 naming the nodes that use them, unless force)",
          tags,
          querystring: DeleteAccelerationQuery,
          response: { 200: AccelerateView, ...errors },
        },
      },
      async (req) => accelerate.remove(managerSharedDir(), req.query.original, req.query.force),
    );
  }
}
