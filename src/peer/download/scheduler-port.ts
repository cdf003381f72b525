/** What the download path needs from the scheduler: the subset of SchedulerClient it calls (fakes implement just this). */
import type { SchedulerClient } from "../../api/scheduler-client.js";

/** The calls of one download session. */
export type SessionScheduler = Pick<SchedulerClient, "registerPeer" | "schedule" | "reportPieces" | "reportFailure" | "reportResult">;

/** The engine also re-registers held tasks and leaves evicted ones. */
export type EngineScheduler = SessionScheduler & Pick<SchedulerClient, "leaveTask">;
