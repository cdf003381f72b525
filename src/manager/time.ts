/** The manager stores full ISO timestamps and shows them as Dragonfly does: `2024-04-18T08:51:55Z`. */
export function nowIso(now = Date.now()): string {
  return new Date(now).toISOString();
}

export function showTime(iso: string): string {
  return iso.replace(/\.\d+Z$/, "Z");
}

export function isPast(iso: string, now = Date.now()): boolean {
  return Date.parse(iso) <= now;
}
