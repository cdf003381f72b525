/**
 * Clients of the manager: the Open API (personal access token), the console API
 * (user sign-in, tokens), and the membership API schedulers and seed peers use to
 * register and keep alive (`startManagerKeepAlive`).
 */
import { z } from "zod";
import { KilnError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { callJson, type JsonRequest } from "./http-json.js";
import { CLUSTER_SECRET_HEADER, Ok } from "./common.js";
import { ClusterView, type ClusterConfig } from "./clusters.js";
import { JobView } from "./jobs.js";
import {
  KeepAliveReply,
  RegistrationReply,
  SchedulerSearchReply,
  type SchedulerRegistration,
  type SchedulerSearchQuery,
  type SchedulerSearchQueryInput,
  type SeedPeerRegistrationInput,
} from "./registration.js";
import { MANAGER_PATHS } from "./manager-paths.js";
import { SignInReply, UserView } from "./users.js";
import { TokenView, type CreateTokenBody } from "./tokens.js";
import { PullScheduleView } from "./puller.js";
import type { HostsReport } from "./peers.js";

const Empty = z.unknown();

/** The Dragonfly-compatible Open API, authenticated with a personal access token. */
/**
 * What a CLI waits for the manager: `answerMs` for a whole answer, and at most
 * `connectMs` (5 s, or less when the answer limit is shorter) for the connection.
 */
export interface ClientTimeouts {
  answerMs?: number;
  connectMs?: number;
}

export const CONNECT_TIMEOUT_MS = 5_000;

function withTimeouts(req: JsonRequest, t: ClientTimeouts): JsonRequest {
  if (t.answerMs === undefined) return req;
  return { timeoutMs: t.answerMs, connectTimeoutMs: t.connectMs ?? Math.min(CONNECT_TIMEOUT_MS, t.answerMs), ...req };
}

export class OpenApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeouts: ClientTimeouts = {},
  ) {}

  private call<S extends z.ZodType>(path: string, reply: S, req: JsonRequest = {}): Promise<z.infer<S>> {
    return callJson(this.baseUrl, path, reply, withTimeouts(req, this.timeouts));
  }

  private get auth() {
    return { authorization: `Bearer ${this.token}` };
  }

  /** `body` is sent as given (Dragonfly's request shape: { type: "preheat", args, scheduler_cluster_ids? }). */
  createJob(body: unknown) {
    return this.call(MANAGER_PATHS.jobs, JobView, { method: "POST", body, headers: this.auth });
  }

  getJob(id: number) {
    return this.call(MANAGER_PATHS.job(id), JobView, { headers: this.auth });
  }

  listJobs(q: { page?: number; per_page?: number; state?: string; type?: string } = {}) {
    return this.call(MANAGER_PATHS.jobs, z.array(JobView), { query: q, headers: this.auth });
  }

  deleteJob(id: number) {
    return this.call(MANAGER_PATHS.job(id), Empty, { method: "DELETE", headers: this.auth });
  }

  listClusters() {
    return this.call(MANAGER_PATHS.clusters, z.array(ClusterView), { headers: this.auth });
  }

  listPullSchedules(page = 1) {
    return this.call(MANAGER_PATHS.pullSchedules, z.array(PullScheduleView), { query: { page, per_page: 100 }, headers: this.auth });
  }

  createPullSchedule(body: unknown) {
    return this.call(MANAGER_PATHS.pullSchedules, PullScheduleView, { method: "POST", body, headers: this.auth });
  }

  updatePullSchedule(id: number, body: unknown) {
    return this.call(MANAGER_PATHS.pullSchedule(id), PullScheduleView, { method: "PATCH", body, headers: this.auth });
  }

  runPullSchedule(id: number) {
    return this.call(MANAGER_PATHS.pullScheduleRun(id), PullScheduleView, { method: "POST", headers: this.auth });
  }

  deletePullSchedule(id: number) {
    return this.call(MANAGER_PATHS.pullSchedule(id), Empty, { method: "DELETE", headers: this.auth });
  }

  getPullSchedule(id: number) {
    return this.call(MANAGER_PATHS.pullSchedule(id), PullScheduleView, { headers: this.auth });
  }
}

/** The console API: sign in as a user, change the password, manage personal access tokens. */
export class ConsoleClient {
  private session: string | undefined;

  constructor(
    readonly baseUrl: string,
    private readonly timeouts: ClientTimeouts = {},
  ) {}

  private call<S extends z.ZodType>(path: string, reply: S, req: JsonRequest = {}): Promise<z.infer<S>> {
    return callJson(this.baseUrl, path, reply, withTimeouts(req, this.timeouts));
  }

  private get auth(): Record<string, string> {
    if (!this.session) throw new KilnError("BAD_REQUEST", "sign in first");
    return { authorization: `Bearer ${this.session}` };
  }

  /** Signs in (Dragonfly's `{token, expire}`) and says who that is (`user`: id, role, whether the password must be changed first). */
  async signIn(name: string, password: string): Promise<SignInReply & { user: UserView }> {
    const reply = await this.call(MANAGER_PATHS.signin, SignInReply, { body: { name, password } });
    this.session = reply.token;
    return { ...reply, user: await this.me() };
  }

  async signOut(): Promise<void> {
    await this.call(MANAGER_PATHS.signout, Empty, { method: "POST", headers: this.auth });
    this.session = undefined;
  }

  me() {
    return this.call(MANAGER_PATHS.me, UserView, { headers: this.auth });
  }

  resetPassword(userId: number, oldPassword: string, newPassword: string) {
    return this.call(MANAGER_PATHS.resetPassword(userId), UserView, {
      body: { old_password: oldPassword, new_password: newPassword },
      headers: this.auth,
    });
  }

  createToken(body: CreateTokenBody) {
    return this.call(MANAGER_PATHS.tokens, TokenView, { body, headers: this.auth });
  }

  /** Every token the user may see, page after page. */
  async listTokens(): Promise<TokenView[]> {
    const all: TokenView[] = [];
    for (let page = 1; ; page++) {
      const batch = await this.call(MANAGER_PATHS.tokens, z.array(TokenView), { query: { page, per_page: 100 }, headers: this.auth });
      all.push(...batch);
      if (batch.length < 100) return all;
    }
  }

  updateToken(id: number, body: { state?: "active" | "inactive"; name?: string; bio?: string; expired_at?: string }) {
    return this.call(MANAGER_PATHS.token(id), TokenView, { method: "PATCH", body, headers: this.auth });
  }

  deleteToken(id: number) {
    return this.call(MANAGER_PATHS.token(id), Empty, { method: "DELETE", headers: this.auth });
  }
}

export type MemberKind = "scheduler" | "seed_peer";

/** Registration and keepalive of schedulers and seed peers. */
export class ManagerMembershipClient {
  constructor(
    readonly baseUrl: string,
    /** The manager's shared cluster secret, if it has one (KILN_CLUSTER_SECRET). */
    private readonly secret?: string,
  ) {}

  private get headers(): Record<string, string> {
    return this.secret ? { [CLUSTER_SECRET_HEADER]: this.secret } : {};
  }

  register(kind: "scheduler", body: SchedulerRegistration): Promise<RegistrationReply>;
  register(kind: "seed_peer", body: SeedPeerRegistrationInput): Promise<RegistrationReply>;
  register(kind: MemberKind, body: SchedulerRegistration | SeedPeerRegistrationInput): Promise<RegistrationReply> {
    const path = kind === "scheduler" ? MANAGER_PATHS.schedulers : MANAGER_PATHS.seedPeers;
    return callJson(this.baseUrl, path, RegistrationReply, { body, timeoutMs: 5_000, headers: this.headers });
  }

  keepAlive(kind: MemberKind, id: number) {
    const path = kind === "scheduler" ? MANAGER_PATHS.schedulerKeepAlive(id) : MANAGER_PATHS.seedPeerKeepAlive(id);
    return callJson(this.baseUrl, path, KeepAliveReply, { method: "POST", timeoutMs: 5_000, headers: this.headers });
  }

  /** A scheduler's hosts, for the manager's peer inventory. */
  reportHosts(id: number, report: HostsReport) {
    return callJson(this.baseUrl, MANAGER_PATHS.schedulerHosts(id), Ok, { body: report, timeoutMs: 30_000, headers: this.headers });
  }

  /** The schedulers of the cluster whose scopes match this host best. */
  searchSchedulers(host: SchedulerSearchQuery | SchedulerSearchQueryInput) {
    const q = new URLSearchParams({ hostname: host.hostname, ip: host.ip, idc: host.idc ?? "", location: host.location ?? "" });
    if (host.scheduler_cluster_id !== undefined) q.set("scheduler_cluster_id", String(host.scheduler_cluster_id));
    return callJson(this.baseUrl, `${MANAGER_PATHS.schedulerSearch}?${q}`, SchedulerSearchReply, { timeoutMs: 5_000, headers: this.headers });
  }

  deregister(kind: MemberKind, id: number) {
    const path = kind === "scheduler" ? MANAGER_PATHS.scheduler(id) : MANAGER_PATHS.seedPeer(id);
    return callJson(this.baseUrl, path, Ok, { method: "DELETE", timeoutMs: 5_000, headers: this.headers });
  }
}

interface KeepAliveCommon {
  managerUrl: string;
  log?: Logger;
  /** Default: what the manager answers at registration. */
  intervalMs?: number;
  /** Shared cluster secret, when the manager has one. */
  secret?: string;
  /** Called with the cluster's settings at registration and at every keepalive. */
  onClusterConfig?: (config: ClusterConfig) => void;
  /** A scheduler's: called with the other active schedulers of its cluster (API URLs) at registration and at every keepalive. */
  onOtherSchedulers?: (urls: string[]) => void;
}

/** A scheduler's hosts, sent after a keepalive at most every `everyMs`. */
interface HostsReporting {
  hostsReport?: { snapshot: () => HostsReport; everyMs: number };
}

export type KeepAliveOptions =
  | (KeepAliveCommon & HostsReporting & { kind: "scheduler"; registration: SchedulerRegistration })
  | (KeepAliveCommon & { kind: "seed_peer"; registration: SeedPeerRegistrationInput });

export interface ManagerKeepAlive {
  /** The member id once registered. */
  readonly id: number | undefined;
  /** Resolves after the first successful registration. */
  readonly registered: Promise<void>;
  /** Stops keeping alive and deregisters (best effort), so the member leaves the cluster's records at once. */
  stop(): Promise<void>;
}

/**
 * Registers a scheduler or seed peer with the manager and keeps it alive. A
 * manager that is down or restarted is retried every interval (and re-registered
 * when it no longer knows the member); errors are logged, never thrown.
 */
export function startManagerKeepAlive(opts: KeepAliveOptions): ManagerKeepAlive {
  const client = new ManagerMembershipClient(opts.managerUrl, opts.secret);
  let id: number | undefined;
  let interval = opts.intervalMs ?? 5_000;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let warned = false;
  let reportedAt = 0;
  let markRegistered: () => void = () => undefined;
  const registered = new Promise<void>((resolve) => (markRegistered = resolve));

  const register = () => (opts.kind === "scheduler" ? client.register("scheduler", opts.registration) : client.register("seed_peer", opts.registration));

  const tick = async () => {
    try {
      if (id === undefined) {
        const reply = await register();
        if (stopped) {
          await client.deregister(opts.kind, reply.id).catch(() => undefined); // stopped while registering
          return;
        }
        id = reply.id;
        if (opts.intervalMs === undefined) interval = reply.keepalive_interval_ms;
        opts.onClusterConfig?.(reply.config);
        if (reply.schedulers) opts.onOtherSchedulers?.(reply.schedulers);
        opts.log?.info({ manager: opts.managerUrl, kind: opts.kind, id, cluster: reply.scheduler_cluster_id }, "registered with the manager");
        markRegistered();
      } else {
        // Not inside `onClusterConfig?.(…)`: an optional call skips evaluating its arguments, and seed peers pass no hook.
        const reply = await client.keepAlive(opts.kind, id);
        opts.onClusterConfig?.(reply.config);
        if (reply.schedulers) opts.onOtherSchedulers?.(reply.schedulers);
      }
      const reporting = opts.kind === "scheduler" ? opts.hostsReport : undefined;
      if (reporting && Date.now() - reportedAt >= reporting.everyMs) {
        await client.reportHosts(id, reporting.snapshot());
        reportedAt = Date.now();
      }
      warned = false;
    } catch (err) {
      if (err instanceof KilnError && err.status === 404) id = undefined; // the manager forgot us: register again now
      if (!warned) opts.log?.warn({ manager: opts.managerUrl, err: (err as Error).message }, "manager keepalive failed; retrying");
      warned = true;
    }
    if (!stopped) {
      timer = setTimeout(() => void tick(), id === undefined && !warned ? 0 : interval);
      timer.unref();
    }
  };
  void tick();

  return {
    get id() {
      return id;
    },
    registered,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (id !== undefined) await client.deregister(opts.kind, id).catch(() => undefined);
    },
  };
}
