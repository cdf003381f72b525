/**
 * Whether the manager answers: every call reports here (an answer of any status means
 * it is up; a failed fetch or a gateway's 502/503/504 means it is not). The shell shows
 * the unreachable state and retries; pages keep their last data, marked stale.
 */
import { useSyncExternalStore } from "react";

export interface Connectivity {
  reachable: boolean;
  /** When the manager last answered (ms since the epoch), if ever. */
  lastAnswerAt?: number;
  /** When it stopped answering. */
  downSince?: number;
}

let state: Connectivity = { reachable: true };
const listeners = new Set<() => void>();

function set(next: Connectivity): void {
  if (next.reachable === state.reachable && next.lastAnswerAt === state.lastAnswerAt) return;
  state = next;
  for (const fn of listeners) fn();
}

export function answered(): void {
  // One update a second is plenty for "last answer at" (it is shown to the second).
  const now = Date.now();
  if (state.reachable && state.lastAnswerAt !== undefined && now - state.lastAnswerAt < 1000) return;
  set({ reachable: true, lastAnswerAt: now });
}

export function unreachable(): void {
  if (!state.reachable) return;
  set({ ...state, reachable: false, downSince: Date.now() });
}

export function connectivity(): Connectivity {
  return state;
}

export function useConnectivity(): Connectivity {
  return useSyncExternalStore(
    (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    () => state,
  );
}
