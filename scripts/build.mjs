// Bundles the kiln CLI into dist/kiln.mjs; dependencies stay in node_modules.
import { build } from "esbuild";

await build({
  entryPoints: ["src/cli/kiln.ts"],
  outfile: "dist/kiln.mjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});
