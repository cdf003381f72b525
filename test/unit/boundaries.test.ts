/**
 * The import rules of the tree: components (manager, scheduler, peer) meet only through
 * the wire schemas and clients in src/api; libraries (common, registry, accelerate) never
 * reach up into a component; the CLI wires everything; the console bundle imports no Node
 * built-in. A new import across these lines fails here, naming the file and the import.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../..");
const src = join(root, "src");

/** What each top-level directory of src/ may import besides itself. */
const ALLOWED: Record<string, string[]> = {
  common: [],
  api: ["common"],
  registry: ["common"],
  accelerate: ["api", "common", "registry"],
  snapshotter: ["api", "common", "accelerate"],
  scheduler: ["api", "common"],
  peer: ["api", "common", "registry", "accelerate"],
  manager: ["api", "common", "registry", "accelerate"],
  cli: ["*"],
};

function sources(dir: string, ext: RegExp): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && ext.test(e.name) && !(e.parentPath ?? e.path).includes("node_modules"))
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g)) out.push((m[1] ?? m[2])!);
  return out;
}

const topDir = (path: string) => relative(src, path).split("/")[0]!;

describe("import boundaries", () => {
  it("src/: each directory imports only what its layer allows", () => {
    const dirs = readdirSync(src, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    assert.deepEqual(
      dirs.filter((d) => !(d in ALLOWED)),
      [],
      "every directory of src/ has a rule here",
    );
    const violations: string[] = [];
    for (const file of sources(src, /\.tsx?$/)) {
      const from = topDir(file);
      for (const spec of specifiers(file)) {
        if (!spec.startsWith(".")) continue;
        const to = topDir(resolve(dirname(file), spec));
        if (to === from || ALLOWED[from]!.includes("*") || ALLOWED[from]!.includes(to)) continue;
        violations.push(`${relative(root, file)} imports ${spec} (${from} → ${to})`);
      }
    }
    assert.deepEqual(violations, []);
  });

  it("the console bundle reaches no Node built-in, through src/api and src/common included", () => {
    const builtins = new Set(builtinModules);
    const aliases: Record<string, string> = { "@api/": join(src, "api"), "@common/": join(src, "common") };
    /** The TypeScript file a specifier names, when it is kiln's own code. */
    const ownFile = (from: string, spec: string): string | undefined => {
      const alias = Object.keys(aliases).find((a) => spec.startsWith(a));
      const path = alias ? join(aliases[alias]!, spec.slice(alias.length)) : spec.startsWith(".") ? resolve(dirname(from), spec) : undefined;
      if (!path) return undefined;
      for (const candidate of [path.replace(/\.js$/, ".ts"), `${path}.ts`, `${path}.tsx`, path]) {
        try {
          readFileSync(candidate);
          return candidate;
        } catch {}
      }
      return undefined;
    };
    const violations: string[] = [];
    const seen = new Set<string>();
    const visit = (file: string, via: string[]) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of specifiers(file)) {
        if (spec.startsWith("node:") || builtins.has(spec.split("/")[0]!)) violations.push([...via, relative(root, file), spec].join(" → "));
        const next = ownFile(file, spec);
        if (next) visit(next, [...via, relative(root, file)]);
      }
    };
    for (const file of sources(join(root, "console", "src"), /\.tsx?$/)) visit(file, []);
    assert.ok(
      [...seen].some((f) => f.startsWith(join(src, "api"))),
      "the walk follows the console into src/api",
    );
    assert.deepEqual(violations, []);
  });
});
