// Bundles the kiln CLI into dist/kiln.mjs (+ dist/chunks); dependencies stay in node_modules.
import { rmSync } from "node:fs";
import { build } from "esbuild";

rmSync("dist", { recursive: true, force: true });

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
