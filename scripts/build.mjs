// Bundles the kiln CLI into dist/kiln.mjs (+ dist/chunks); dependencies stay in node_modules.
// Then the web console into dist/console, unless nothing it is built from changed.
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { buildConsole, consoleBuildStale } from "./console.mjs";

// Everything but the console build, which has its own staleness check.
for (const name of (() => {
  try {
    return readdirSync("dist");
  } catch {
    return [];
  }
})()) {
  if (name !== "console") rmSync(join("dist", name), { recursive: true, force: true });
}

await build({
  entryPoints: ["src/cli/kiln.ts"],
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  // Sub-commands load lazily; shared code goes into chunks.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});

if (consoleBuildStale()) buildConsole();
