// The console's production build: into ../dist/console, where the manager serves it at /.
// The wire schemas come from ../src/api (one source of truth with the server), through the @api alias.
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** The shared schemas must stay browser-safe: a Node built-in reaching the bundle fails the build. */
function noNodeBuiltins(): Plugin {
  return {
    name: "kiln-no-node-builtins",
    enforce: "pre",
    resolveId(id, importer) {
      if (id.startsWith("node:")) this.error(`${importer ?? "?"} imports ${id}: code bundled into the console must not need Node`);
      return null;
    },
  };
}

export default defineConfig({
  root: here("."),
  base: "/",
  plugins: [noNodeBuiltins(), react()],
  resolve: {
    alias: { "@api": here("../src/api"), "@common": here("../src/common") },
    // src/api imports zod too: one copy, the console's.
    dedupe: ["zod"],
  },
  build: {
    outDir: here("../dist/console"),
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    reportCompressedSize: false,
    // The entry holds React, Mantine, react-query and the shared zod schemas (~500 kB, ~150 kB brotli); pages load lazily.
    chunkSizeWarningLimit: 700,
  },
});
