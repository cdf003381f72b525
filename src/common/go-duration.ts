/** Go duration strings ("90s", "1h30m", "500ms"), as Dragonfly's clients send job timeouts. */
export const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A job timeout in seconds: a number of seconds, a Go duration string, or Go's time.Duration in nanoseconds (numbers ≥ 1e6). */
export function timeoutSeconds(v: number | string): number {
  if (typeof v === "number") return v >= 1e6 ? v / 1e9 : v;
  let ms = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms / 1000;
}
