/**
 * The console's production build size and first-load time against the manager on
 * loopback: `node --import tsx bench/console-load.ts` (after node scripts/build.mjs).
 * Sizes: what a first visit downloads (index.html, entry JS, CSS) raw, gzip and
 * brotli. Time: a cold browser (fresh profile, empty cache) from navigation start to
 * the sign-in form being on screen, median of several runs.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { spawnKiln } from "../test/helpers/proc.js";
import { freePort } from "../test/helpers/registry.js";
import { CHROMIUM } from "../test/helpers/browser.js";

const RUNS = Number(process.env.BENCH_CONSOLE_RUNS ?? 7);
const dist = fileURLToPath(new URL("../dist/console/", import.meta.url));
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const size = (p: string) => statSync(p).size;

// What index.html loads at once: its own script and stylesheet (pages are separate chunks, loaded on navigation).
const html = readFileSync(join(dist, "index.html"), "utf8");
const first = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
const files = ["index.html", ...first];
const sum = (suffix: string) => files.reduce((n, f) => n + (suffix && f === "index.html" ? size(join(dist, f)) : size(join(dist, f + suffix))), 0);
const all = readdirSync(join(dist, "assets")).filter((f) => /\.(js|css)$/.test(f));
const allRaw = all.reduce((n, f) => n + size(join(dist, "assets", f)), 0);
const allBr = all.reduce((n, f) => n + size(join(dist, "assets", `${f}.br`)), 0);

const dir = await mkdtemp(join(tmpdir(), "kiln-console-bench-"));
const port = await freePort();
const manager = await spawnKiln(
  ["manager", "--host", "127.0.0.1", "--port", String(port), "--database-url", `sqlite:${join(dir, "m.db")}`, "--data-dir", dir],
  {
    env: { KILN_ROOT_PASSWORD: "bench-root-password" },
  },
);
const times: number[] = [];
const transferred: number[] = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const profile = await mkdtemp(join(tmpdir(), "kiln-chromium-bench-"));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.getByRole("heading", { name: "Sign in to kiln" }).waitFor({ timeout: 30_000 });
    const m = (await page.evaluate(`(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const res = performance.getEntriesByType("resource");
      return { shown: performance.now(), bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0) };
    })()`)) as { shown: number; bytes: number };
    times.push(m.shown);
    transferred.push(m.bytes);
    await ctx.close();
    await rm(profile, { recursive: true, force: true });
  }
} finally {
  await manager.kill();
  await rm(dir, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`first load (${files.join(", ")}): ${kib(sum(""))} raw, ${kib(sum(".gz"))} gzip, ${kib(sum(".br"))} brotli`);
console.log(`whole build (every page's JS and CSS): ${kib(allRaw)} raw, ${kib(allBr)} brotli, ${all.length} files`);
console.log(
  `cold first load to the sign-in form on loopback: median ${median(times).toFixed(0)} ms of ${RUNS} (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)}); ${kib(median(transferred))} transferred`,
);
