/** Data the pages read and write, as react-query hooks over the console API (/api/v1). */
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { z } from "zod";
import { ClusterView, type CreateClusterBody, type UpdateClusterBody } from "@api/clusters";
import { JobView, PreheatJobView, type JobState } from "@api/jobs";
import { MANAGER_PATHS } from "@api/manager-paths";
import { MemberView } from "@api/members";
import { TokenView, type CreateTokenBody } from "@api/tokens";
import { UserView, type CreateUserBody, type Role, type UpdateUserBody } from "@api/users";
import { PeerView, TrafficView } from "@api/peers";
import { PullScheduleView } from "@api/puller";
import { ACCELERATE_PATHS, AccelerateView } from "@api/accelerate";
import { call, callPage } from "./client";

const Nothing = z.unknown();
export const PER_PAGE = 10;
/** How often a pending job's page asks again (Dragonfly's console: every 60 s). */
export const LIVE_MS = 2_000;

export function useMe() {
  return useQuery({ queryKey: ["me"], queryFn: () => call(UserView, MANAGER_PATHS.me), retry: false, staleTime: 30_000 });
}

export interface JobsFilter {
  page: number;
  state?: JobState;
  url?: string;
}

export function useJobs(f: JobsFilter) {
  return useQuery({
    queryKey: ["jobs", f],
    queryFn: () => callPage(PreheatJobView, MANAGER_PATHS.consoleJobs, { page: f.page, per_page: PER_PAGE, type: "preheat", state: f.state, url: f.url }),
    placeholderData: keepPreviousData,
    // The list refreshes while something on it is still running.
    refetchInterval: (q) => (q.state.data?.items.some((j) => j.state === "PENDING") ? LIVE_MS : false),
  });
}

export function useJob(id: number, enabled = true) {
  return useQuery({
    queryKey: ["job", id],
    enabled,
    queryFn: () => call(JobView, MANAGER_PATHS.consoleJob(id)),
    refetchInterval: (q) => (q.state.data?.state === "PENDING" ? LIVE_MS : false),
  });
}

/** Job counts per state (one request per state; only the X-Total-Count header is used). */
export function useJobCounts() {
  return useQuery({
    queryKey: ["job-counts"],
    queryFn: async () => {
      const states = ["PENDING", "SUCCESS", "FAILURE"] as const;
      const pages = await Promise.all(states.map((state) => callPage(JobView, MANAGER_PATHS.consoleJobs, { state, per_page: 1, type: "preheat" })));
      return Object.fromEntries(states.map((s, i) => [s, pages[i]!.total])) as Record<JobState, number>;
    },
    refetchInterval: 10_000,
  });
}

export function useClusters(page: number) {
  return useQuery({
    queryKey: ["clusters", page],
    queryFn: () => callPage(ClusterView, MANAGER_PATHS.consoleClusters, { page, per_page: PER_PAGE }),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
}

/** Every cluster, for pickers (the API pages by at most 100). */
export function useAllClusters() {
  return useQuery({ queryKey: ["clusters", "all"], queryFn: () => callPage(ClusterView, MANAGER_PATHS.consoleClusters, { page: 1, per_page: 100 }) });
}

export type MemberKind = "schedulers" | "seed-peers";

export function useMembers(kind: MemberKind, f: { page: number; hostname?: string; state?: "active" | "inactive" }) {
  const path = kind === "schedulers" ? MANAGER_PATHS.schedulers : MANAGER_PATHS.seedPeers;
  return useQuery({
    queryKey: ["members", kind, f],
    queryFn: () => callPage(MemberView, path, { page: f.page, per_page: PER_PAGE, hostname: f.hostname, state: f.state }),
    placeholderData: keepPreviousData,
    refetchInterval: 5_000,
  });
}

export interface PeersFilter {
  page: number;
  q?: string;
  type?: "normal" | "super";
  state?: "active" | "inactive";
  /** `zone=a,arch=amd64` */
  labels?: string;
  clusterId?: number;
}

export function usePeers(f: PeersFilter) {
  return useQuery({
    queryKey: ["peers", f],
    queryFn: () =>
      callPage(PeerView, MANAGER_PATHS.peers, {
        page: f.page,
        per_page: PER_PAGE,
        q: f.q,
        type: f.type,
        state: f.state,
        labels: f.labels,
        scheduler_cluster_id: f.clusterId,
      }),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
}

/** Peers up and down (two one-item pages; only the totals are read). */
export function usePeerCounts() {
  return useQuery({
    queryKey: ["peers", "counts"],
    queryFn: async () => {
      const [active, inactive] = await Promise.all(
        (["active", "inactive"] as const).map((state) => callPage(PeerView, MANAGER_PATHS.peers, { state, per_page: 1 })),
      );
      return { active: active!.total, inactive: inactive!.total };
    },
    refetchInterval: 10_000,
  });
}

export function useTraffic(minutes: number) {
  return useQuery({
    queryKey: ["traffic", minutes],
    queryFn: () => call(TrafficView, MANAGER_PATHS.traffic, { query: { minutes } }),
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });
}

export function usePullSchedules(page: number) {
  return useQuery({
    queryKey: ["pulls", page],
    queryFn: () => callPage(PullScheduleView, MANAGER_PATHS.consolePullSchedules, { page, per_page: PER_PAGE }),
    placeholderData: keepPreviousData,
    refetchInterval: 10_000,
  });
}

/** One schedule; asked again every few seconds while it runs or is due. */
export function usePullSchedule(id: number) {
  return useQuery({
    queryKey: ["pull", id],
    queryFn: () => call(PullScheduleView, MANAGER_PATHS.consolePullSchedule(id)),
    refetchInterval: (q) => (q.state.data?.state === "running" || (q.state.data?.next_run_at ?? "9") <= new Date().toISOString() ? LIVE_MS : 10_000),
  });
}

export const useCreatePullSchedule = () => useWrite((body: unknown) => call(PullScheduleView, MANAGER_PATHS.consolePullSchedules, { body }), ["pulls"]);
export const useUpdatePullSchedule = () =>
  useWrite(
    ({ id, body }: { id: number; body: unknown }) => call(PullScheduleView, MANAGER_PATHS.consolePullSchedule(id), { method: "PATCH", body }),
    ["pulls", "pull"],
  );
export const useRunPullSchedule = () =>
  useWrite((id: number) => call(PullScheduleView, MANAGER_PATHS.consolePullScheduleRun(id), { method: "POST" }), ["pulls", "pull"]);

/** Image acceleration's state; asked again every few seconds while an image is created or deleted. */
export function useAcceleration() {
  return useQuery({
    queryKey: ["accelerate"],
    queryFn: () => call(AccelerateView, ACCELERATE_PATHS.console),
    refetchInterval: (q) => (q.state.data?.Status === "Creating" || q.state.data?.Status === "Deleting" ? LIVE_MS : 10_000),
  });
}

const accelerate = (path: string, opts: Parameters<typeof call>[2]) => call(AccelerateView, `${ACCELERATE_PATHS.console}${path}`, opts);
export const useAccelerationSwitch = () =>
  useWrite(
    ({ on, force }: { on: boolean; force?: boolean }) => accelerate(on ? "/enable" : "/disable", { method: "POST", body: on ? undefined : { force: !!force } }),
    ["accelerate"],
  );
export const useCreateAccelerated = () => useWrite((body: unknown) => accelerate("/images", { body }), ["accelerate"]);
export const useDeleteAccelerated = () =>
  useWrite(
    ({ original, force }: { original: string; force: boolean }) => accelerate("/images", { method: "DELETE", query: { original, force: String(force) } }),
    ["accelerate"],
  );

export function useTokens(page: number) {
  return useQuery({
    queryKey: ["tokens", page],
    queryFn: () => callPage(TokenView, MANAGER_PATHS.tokens, { page, per_page: PER_PAGE }),
    placeholderData: keepPreviousData,
  });
}

export function useUsers(page: number) {
  return useQuery({
    queryKey: ["users", page],
    queryFn: () => callPage(UserView, MANAGER_PATHS.users, { page, per_page: PER_PAGE }),
    placeholderData: keepPreviousData,
  });
}

/** A write, then the lists it may have changed are read again. */
function useWrite<A, R>(fn: (a: A) => Promise<R>, invalidates: string[]) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => Promise.all(invalidates.map((k) => qc.invalidateQueries({ queryKey: [k] }))) });
}

/** Any job (the Tasks page's get_task, delete_task, get_image_distribution); follow it with useJob. */
export const useRunJob = () => useWrite((body: unknown) => call(JobView, MANAGER_PATHS.consoleJobs, { body }), ["jobs"]);
export const useCreateJob = () => useWrite((body: unknown) => call(JobView, MANAGER_PATHS.consoleJobs, { body }), ["jobs", "job-counts"]);
export const useCancelJob = () =>
  useWrite((id: number) => call(JobView, MANAGER_PATHS.consoleJobCancel(id), { method: "POST" }), ["jobs", "job", "job-counts"]);
export const useCreateCluster = () => useWrite((b: CreateClusterBody) => call(ClusterView, MANAGER_PATHS.consoleClusters, { body: b }), ["clusters"]);
export const useUpdateCluster = () =>
  useWrite(
    ({ id, body }: { id: number; body: UpdateClusterBody }) => call(ClusterView, MANAGER_PATHS.consoleCluster(id), { method: "PATCH", body }),
    ["clusters"],
  );
export const useCreateToken = () => useWrite((b: CreateTokenBody) => call(TokenView, MANAGER_PATHS.tokens, { body: b }), ["tokens"]);
export const useRevokeToken = () =>
  useWrite((id: number) => call(TokenView, MANAGER_PATHS.token(id), { method: "PATCH", body: { state: "inactive" } }), ["tokens"]);
export const useCreateUser = () => useWrite((b: CreateUserBody) => call(UserView, MANAGER_PATHS.users, { body: b }), ["users"]);
export const useUpdateUser = () =>
  useWrite(({ id, body }: { id: number; body: UpdateUserBody }) => call(UserView, MANAGER_PATHS.user(id), { method: "PATCH", body }), ["users"]);
export const useSetRole = () =>
  useWrite(({ id, role }: { id: number; role: Role }) => call(UserView, MANAGER_PATHS.userRole(id, role), { method: "PUT" }), ["users", "me"]);
export const useChangePassword = () =>
  useWrite(
    ({ id, old_password, new_password }: { id: number; old_password: string; new_password: string }) =>
      call(UserView, MANAGER_PATHS.resetPassword(id), { body: { old_password, new_password } }),
    ["me"],
  );
export const signOut = () => call(Nothing, MANAGER_PATHS.signout, { method: "POST" });
