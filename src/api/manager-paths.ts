/**
 * Where the manager answers: the Dragonfly-compatible Open API (/oapi/v1), the console
 * API (/api/v1) and the probes, and the probes' reply. The shapes each path takes and
 * returns live in one file per resource beside this one (jobs.ts, clusters.ts, users.ts,
 * tokens.ts, members.ts, registration.ts, puller.ts, peers.ts). Bundled into the web
 * console too, so nothing here may need Node.
 */
import { z } from "zod";

export const OPEN_API = "/oapi/v1";
export const CONSOLE_API = "/api/v1";

export const MANAGER_PATHS = {
  jobs: `${OPEN_API}/jobs`,
  job: (id: number) => `${OPEN_API}/jobs/${id}`,
  clusters: `${OPEN_API}/clusters`,
  cluster: (id: number) => `${OPEN_API}/clusters/${id}`,
  openapi: `${OPEN_API}/openapi.json`,
  jobCancel: (id: number) => `${OPEN_API}/jobs/${id}/cancel`,
  consoleOpenapi: `${CONSOLE_API}/openapi.json`,
  signin: `${CONSOLE_API}/users/signin`,
  signout: `${CONSOLE_API}/users/signout`,
  resetPassword: (userId: number) => `${CONSOLE_API}/users/${userId}/reset_password`,
  me: `${CONSOLE_API}/users/me`,
  users: `${CONSOLE_API}/users`,
  user: (id: number) => `${CONSOLE_API}/users/${id}`,
  userRoles: (id: number) => `${CONSOLE_API}/users/${id}/roles`,
  userRole: (id: number, role: string) => `${CONSOLE_API}/users/${id}/roles/${role}`,
  consoleJobs: `${CONSOLE_API}/jobs`,
  consoleJob: (id: number) => `${CONSOLE_API}/jobs/${id}`,
  consoleJobCancel: (id: number) => `${CONSOLE_API}/jobs/${id}/cancel`,
  consoleClusters: `${CONSOLE_API}/clusters`,
  consoleCluster: (id: number) => `${CONSOLE_API}/clusters/${id}`,
  tokens: `${CONSOLE_API}/personal-access-tokens`,
  token: (id: number) => `${CONSOLE_API}/personal-access-tokens/${id}`,
  schedulers: `${CONSOLE_API}/schedulers`,
  schedulerKeepAlive: (id: number) => `${CONSOLE_API}/schedulers/${id}/keepalive`,
  scheduler: (id: number) => `${CONSOLE_API}/schedulers/${id}`,
  seedPeers: `${CONSOLE_API}/seed-peers`,
  seedPeerKeepAlive: (id: number) => `${CONSOLE_API}/seed-peers/${id}/keepalive`,
  seedPeer: (id: number) => `${CONSOLE_API}/seed-peers/${id}`,
  /** Scheduler → manager: the hosts it knows (HostsReport), with the cluster secret. */
  schedulerHosts: (id: number) => `${CONSOLE_API}/schedulers/${id}/hosts`,
  /** The peer inventory (ListPeersQuery → PeerView[]), paged. */
  peers: `${CONSOLE_API}/peers`,
  openPeers: `${OPEN_API}/peers`,
  /** Bytes from the swarm vs from origins over time (TrafficQuery → TrafficView). */
  traffic: `${CONSOLE_API}/traffic`,
  /** Pull schedules (api/puller.ts): image lists kept warm on selected peers. */
  pullSchedules: `${OPEN_API}/pull-schedules`,
  pullSchedule: (id: number) => `${OPEN_API}/pull-schedules/${id}`,
  pullScheduleRun: (id: number) => `${OPEN_API}/pull-schedules/${id}/run`,
  consolePullSchedules: `${CONSOLE_API}/pull-schedules`,
  consolePullSchedule: (id: number) => `${CONSOLE_API}/pull-schedules/${id}`,
  consolePullScheduleRun: (id: number) => `${CONSOLE_API}/pull-schedules/${id}/run`,
  /** Peer → manager: the schedulers of the cluster whose scopes fit this host best (SchedulerSearchQuery → SchedulerSearchReply). */
  schedulerSearch: `${CONSOLE_API}/scheduler-search`,
  /** Liveness: 200 while the process runs (Kubernetes' livenessProbe; Dragonfly's path). */
  health: "/healthy",
  /** Readiness (ReadinessReply): 200 when the database and, when configured, Redis answer in time; 503 naming what does not. */
  ready: "/ready",
} as const;

/** GET /ready. A check is "ok" or the sentence saying why not; `message` (on 503) joins the failed ones. */
export const ReadinessReply = z.object({
  ready: z.boolean(),
  checks: z.object({ database: z.string(), redis: z.string().optional() }),
  message: z.string().optional(),
});
export type ReadinessReply = z.infer<typeof ReadinessReply>;
