/** Small helpers shared by the bench phases: units, formatting, payloads, digests. */
import { createHash, randomFill } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { log } from "./procs.js";

export const MiB = 1024 * 1024;
export const MB = 1e6;

export const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : "—");
export const mbps = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);
export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
/**
 * The p-quantile (0..1) by linear interpolation between the two nearest ranks, so p99
 * of 64 clients is not just the maximum. Infinity (a client that never finished) stays Infinity.
 */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = p * (sorted.length - 1);
  const lo = sorted[Math.floor(rank)]!;
  const hi = sorted[Math.ceil(rank)]!;
  if (!Number.isFinite(hi)) return rank === Math.floor(rank) ? lo : Infinity;
  return lo + (hi - lo) * (rank - Math.floor(rank));
}
/** `a ÷ b` with two decimals and a ×, or — when either is missing. */
export const ratio = (a: number, b: number): string => (Number.isFinite(a / b) && b !== 0 ? `${(a / b).toFixed(2)}×` : "—");

export async function makePayload(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  const fill = (b: Buffer) => new Promise<Buffer>((resolve, reject) => randomFill(b, (err, buf) => (err ? reject(err) : resolve(buf))));
  const chunk = 4 * MiB;
  for (let off = 0; off < size; off += chunk) {
    const buf = await fill(Buffer.allocUnsafe(Math.min(chunk, size - off)));
    hash.update(buf);
    if (!out.write(buf)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest("hex");
}

export async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return h.digest("hex");
}

/** Logs `line()` every `everyMs` until the returned function is called. */
export function ticker(everyMs: number, line: () => Promise<string> | string): () => void {
  const t = setInterval(() => {
    Promise.resolve(line()).then(log, () => undefined);
  }, everyMs);
  return () => clearInterval(t);
}
