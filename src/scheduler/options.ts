import { SCHEDULER } from "../common/defaults.js";

export interface SchedulerOptions {
  hostTimeoutMs: number;
  taskIdleTtlMs: number;
  parentsPerSchedule: number;
  scheduleWaitMs: number;
  /** How long to wait for a triggered seed peer to register before others may go to the origin. */
  seedTriggerWaitMs: number;
  /** Candidate parents sampled per parent selection (see SCHEDULER.filterParentLimit). */
  filterParentLimit: number;
}

export const defaultSchedulerOptions: SchedulerOptions = {
  hostTimeoutMs: SCHEDULER.hostTimeoutMs,
  taskIdleTtlMs: SCHEDULER.taskIdleTtlMs,
  parentsPerSchedule: SCHEDULER.parentsPerSchedule,
  scheduleWaitMs: SCHEDULER.scheduleWaitMs,
  seedTriggerWaitMs: SCHEDULER.seedTriggerWaitMs,
  filterParentLimit: SCHEDULER.filterParentLimit,
};
