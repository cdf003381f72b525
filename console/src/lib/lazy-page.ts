/**
 * Pages load lazily. After an upgrade the old asset names are gone, and an open tab's
 * import of a page fails ("Failed to fetch dynamically imported module"): the app
 * reloads itself once to pick up the new ones. A second failure within a minute, or
 * one while the manager does not answer, is left to the error boundary (no reload loop).
 */
import { type ComponentType, lazy } from "react";

const KEY = "kiln-console-chunk-reload";
const WINDOW_MS = 60_000;

export class ChunkError extends Error {}

/** Reloads once per minute at most; true when it did. */
export function reloadOnce(): boolean {
  const last = Number(sessionStorage.getItem(KEY) ?? 0);
  if (Date.now() - last < WINDOW_MS) return false;
  sessionStorage.setItem(KEY, String(Date.now()));
  window.location.reload();
  return true;
}

async function managerAnswers(): Promise<boolean> {
  try {
    return (await fetch("/healthy", { cache: "no-store" })).ok;
  } catch {
    return false;
  }
}

export function lazyPage<P extends object>(load: () => Promise<{ default: ComponentType<P> }>) {
  return lazy(async () => {
    try {
      return await load();
    } catch (err) {
      // The new index.html names the new chunks: reload, but only when the manager can serve it.
      if ((await managerAnswers()) && reloadOnce()) return new Promise<never>(() => undefined);
      throw new ChunkError(`This page's code could not be loaded (${(err as Error).message}).`);
    }
  });
}
