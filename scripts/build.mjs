// Bundles the kiln CLI: dist/kiln.mjs (src/cli/launch.ts) loads dist/kiln-get.mjs for `kiln get`
// (one file, its dependencies inside) and dist/kiln-cli.mjs (+ dist/chunks; dependencies stay in
// node_modules) for everything else. Then the web console into dist/console, unless nothing it is
// built from changed.
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

const node = { outdir: "dist", outExtension: { ".js": ".mjs" }, platform: "node", target: "node20", format: "esm", logLevel: "warning" };

await build({
  ...node,
  entryPoints: { "kiln-cli": "src/cli/kiln.ts" },
  // Sub-commands load lazily; shared code goes into chunks.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  packages: "external",
  sourcemap: true,
});

await build({
  ...node,
  entryPoints: { "kiln-get": "src/cli/get-main.ts" },
  bundle: true,
  minify: true,
  sourcemap: true,
  // Its CommonJS dependencies require Node's own modules.
  banner: { js: "import { createRequire as __kilnCreateRequire } from 'node:module'; const require = __kilnCreateRequire(import.meta.url);" },
});

await build({ ...node, entryPoints: { kiln: "src/cli/launch.ts" } });

if (consoleBuildStale()) await buildConsole();
