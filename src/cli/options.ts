import { InvalidArgumentError } from "commander";

/** Commander argument parsers shared by sub-commands. */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("must be a port number 0-65535 (0 = any free port)");
  return n;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

/** `1024`, `4MiB`, `64M`, `1G` → bytes. */
export function parseBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`not a size: ${value} (try 4MiB, 512M, 1G)`);
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.round(Number(m[1]) * scale);
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** An http(s) URL → its origin. */
export function parseUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    return u.origin;
  } catch {
    throw new InvalidArgumentError(`expected an http(s) URL, got ${JSON.stringify(value)}`);
  }
}

/** `30d`, `12h`, `90m`, `3600s` → milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`not a duration: ${value} (try 90s, 30m, 12h, 30d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}
