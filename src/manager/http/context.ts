/** What the manager's route modules share. */
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Logger } from "../../common/logger.js";
import type { Store } from "../store.js";
import type { Authenticator } from "../auth/authenticate.js";
import type { JobService } from "../jobs/service.js";
import type { PullScheduleService } from "../puller/service.js";
import type { SignInGuard } from "../auth/signin-limiter.js";
import type { Readiness } from "../readiness.js";

export type ManagerApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

export interface RouteContext {
  store: Store;
  auth: Authenticator;
  jobs: JobService;
  pulls: PullScheduleService;
  log: Logger;
  keepAliveMs: number;
  /** How long a console sign-in lasts. */
  sessionTtlMs: number;
  /** The built web console (index.html and assets/), served at /; none: the API only. */
  consoleDir?: string;
  memberTimeoutMs: number;
  /** When set, schedulers and seed peers must send it to register and keep alive. */
  clusterSecret?: string;
  /** Failed sign-ins (shared through Redis with replicas); default: counted by this manager alone. */
  signInLimiter?: SignInGuard;
  /** What GET /ready checks. */
  readiness: Readiness;
}
