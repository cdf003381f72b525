/**
 * Reads a Dockerfile and replays its stages without a Docker engine: each stage
 * gets a directory as its root file system, COPY copies from the build context
 * (or an earlier stage), WORKDIR moves, RUN runs the command with `sh -c` in the
 * stage's working directory. Like Docker, a slow RUN step (npm ci compiling
 * better-sqlite3) whose inputs (the instructions so far and the bytes they copied
 * in) are unchanged is taken from a layer cache instead of run again;
 * KILN_TEST_DOCKERFILE_NO_CACHE=1 runs every step.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix, relative } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Instruction {
  op: string;
  args: string;
}

export interface Stage {
  name?: string;
  from: string;
  instructions: Instruction[];
}

/** Instructions per stage; continuation lines joined, comments dropped, global ARG defaults put into FROM. */
export function parseDockerfile(text: string): Stage[] {
  const logical = text
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const globals = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, op = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = op.toUpperCase();
    if (upper === "ARG" && stages.length === 0) {
      const [k, v = ""] = args.split("=", 2);
      globals.set(k!.trim(), v.trim());
    } else if (upper === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args.replace(/\$\{(\w+)\}/g, (_, k: string) => globals.get(k) ?? ""));
      if (!m) throw new Error(`FROM ${args}: not understood`);
      stages.push({ from: m[1]!, name: m[2], instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${upper} before FROM`);
      stage.instructions.push({ op: upper, args });
    }
  }
  return stages;
}

export interface ReplayedStage {
  stage: Stage;
  /** The stage's root file system. */
  root: string;
  workdir: string;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  /** RUN steps not replayed (system packages), and RUN steps taken from the layer cache. */
  skipped: string[];
  cached: string[];
}

export const LAYER_CACHE = join(tmpdir(), "kiln-dockerfile-layers");
const CACHE_STEPS_SLOWER_THAN_MS = 30_000;

/** Replays every stage in `into`; `context` is the build context; `skipRun` tells which RUN steps not to run. */
export async function replay(stages: Stage[], context: string, into: string, skipRun: (cmd: string) => boolean): Promise<ReplayedStage[]> {
  const done: ReplayedStage[] = [];
  const used = new Set<string>();
  const noCache = process.env.KILN_TEST_DOCKERFILE_NO_CACHE === "1";
  for (const [i, stage] of stages.entries()) {
    const root = join(into, `stage-${i}`);
    await mkdir(root, { recursive: true });
    const r: ReplayedStage = { stage, root, workdir: "/", skipped: [], cached: [] };
    const key = createHash("sha256").update(`FROM ${stage.from}\n`);
    // Consecutive cached steps: only the last one's layer is put in place, when something needs the stage.
    let cachedLayer: string | undefined;
    const materialize = async () => {
      if (!cachedLayer) return;
      await rm(root, { recursive: true, force: true });
      await run("cp", ["-a", cachedLayer, root]);
      cachedLayer = undefined;
    };
    for (const { op, args } of stage.instructions) {
      key.update(`${op} ${args}\n`);
      if (op === "WORKDIR" || op === "COPY") await materialize();
      if (op === "WORKDIR") {
        r.workdir = posix.resolve(r.workdir, args);
        await mkdir(join(root, r.workdir), { recursive: true });
      } else if (op === "COPY") {
        const from = /^--from=(\S+)\s+/.exec(args);
        const words = args.replace(/^--from=\S+\s+/, "").split(/\s+/);
        const destWord = words.pop()!;
        const dest = posix.resolve(r.workdir, destWord);
        // As Docker reads it: a destination ending in / (or several sources) is a directory to copy into.
        const intoDir = destWord.endsWith("/") || words.length > 1;
        const source = from ? done.find((s, n) => s.stage.name === from[1] || String(n) === from[1]) : undefined;
        if (from && !source) throw new Error(`COPY --from=${from[1]}: no such stage`);
        for (const src of words) {
          const path = source ? join(source.root, src) : join(context, src);
          const target = join(root, intoDir ? posix.join(dest, posix.basename(src)) : dest);
          await mkdir(dirname(target), { recursive: true });
          await cp(path, target, { recursive: true, verbatimSymlinks: true });
          if (!source) key.update(await digestOf(path));
        }
      } else if (op === "RUN") {
        if (skipRun(args)) {
          r.skipped.push(args);
          continue;
        }
        const layer = join(LAYER_CACHE, key.copy().digest("hex"));
        used.add(layer);
        if (!noCache && (await exists(layer))) {
          cachedLayer = layer;
          r.cached.push(args);
          continue;
        }
        await materialize();
        const started = Date.now();
        await run("sh", ["-c", args], { cwd: join(root, r.workdir), env: cleanEnv(), maxBuffer: 64 * 1024 * 1024 });
        // Only slow steps are worth a copy of the stage (npm ci compiles better-sqlite3; the build takes seconds).
        if (Date.now() - started < CACHE_STEPS_SLOWER_THAN_MS) continue;
        await mkdir(LAYER_CACHE, { recursive: true });
        await rm(`${layer}.new`, { recursive: true, force: true });
        await run("cp", ["-a", root, `${layer}.new`]);
        await rm(layer, { recursive: true, force: true });
        await rename(`${layer}.new`, layer);
      } else if (op === "USER") {
        r.user = args;
      } else if (op === "ENTRYPOINT" || op === "CMD") {
        const argv = JSON.parse(args) as string[];
        if (op === "ENTRYPOINT") r.entrypoint = argv;
        else r.cmd = argv;
      }
    }
    await materialize();
    done.push(r);
  }
  // Layers of earlier versions of the Dockerfile or the lock file are of no further use.
  for (const entry of await readdir(LAYER_CACHE).catch(() => [])) {
    if (!used.has(join(LAYER_CACHE, entry))) await rm(join(LAYER_CACHE, entry), { recursive: true, force: true });
  }
  return done;
}

/** The environment a build step sees: no variables of the npm or test process that runs this. */
function cleanEnv(): NodeJS.ProcessEnv {
  const keep = ["PATH", "HOME", "LANG", "TMPDIR"];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A digest of a file or a directory tree (names and bytes). */
async function digestOf(path: string): Promise<string> {
  const h = createHash("sha256");
  const walk = async (p: string): Promise<void> => {
    const s = await stat(p);
    if (s.isDirectory()) {
      for (const e of (await readdir(p)).sort()) await walk(join(p, e));
    } else {
      h.update(`${relative(path, p)}\0`).update(await readFile(p));
    }
  };
  await walk(path);
  return h.digest("hex");
}
