/**
 * deploy/Dockerfile, without a Docker engine: its stages replayed on a clean copy
 * of the tree (tracked and untracked files, nothing ignored: no node_modules, no
 * dist), its own commands run in order (npm ci, the build, the prune to runtime
 * dependencies), then the runtime stage's ENTRYPOINT started as the image's user
 * from what the runtime stage copied: `kiln up` comes up. So the image cannot rot.
 * The first run compiles better-sqlite3 (minutes); later runs take the npm ci
 * layer from the cache while package.json, the lock file, .prebuild-installrc and the
 * Dockerfile up to that step are unchanged, as Docker would.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { chmod, chown, cp, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseDockerfile, replay, type ReplayedStage, type Stage } from "../helpers/dockerfile.js";
import { prerequisitesMissing } from "../helpers/prereq.js";
import { PORTS } from "../../src/common/defaults.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const IMAGE_USER = { name: "node", uid: 1000, gid: 1000 };

/** The build context as a fresh clone of this tree would have it. */
async function cleanCopy(into: string): Promise<void> {
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  for (const file of stdout.split("\0").filter(Boolean)) {
    const from = join(ROOT, file);
    if (!(await stat(from).catch(() => undefined))?.isFile()) continue; // deleted in the work tree
    await mkdir(join(into, file, ".."), { recursive: true });
    await cp(from, join(into, file));
  }
}

describe("deploy/Dockerfile", () => {
  let skip: string | undefined;
  let work: string;
  let stages: Stage[];
  let replayed: ReplayedStage[];

  before(async () => {
    stages = parseDockerfile(await readFile(join(ROOT, "deploy/Dockerfile"), "utf8"));
    // The build stage's apt-get line installs node-gyp's toolchain; here it must already be there.
    skip = await prerequisitesMissing("the Dockerfile's build", { python3: "python3", make: "make", "g++": "g++", git: "git" });
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "kiln-dockerfile-"));
    await chmod(work, 0o755); // the runtime stage is read by the image's user
    await cleanCopy(join(work, "context"));
    replayed = await replay(stages, join(work, "context"), join(work, "stages"), (cmd) => /^apt-get\b/.test(cmd));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("is multi-stage on Node 24 (a supported LTS), runs as the image's non-root user, exposes kiln's ports", () => {
    assert.ok(stages.length >= 2, "a build stage and a runtime stage");
    // The replay below runs on the Node of this machine (20, as CI): the image's major is one engines admits.
    for (const s of stages) assert.match(s.from, /^node:24[.-]/, "Node 24, the Active LTS; 20 is past its end of life");
    const runtime = stages.at(-1)!;
    assert.equal(runtime.instructions.filter((i) => i.op === "USER").at(-1)?.args, IMAGE_USER.name);
    assert.ok(
      !runtime.instructions.some((i) => i.op === "RUN" && /npm (ci|install)\b/.test(i.args)),
      "no install in the runtime stage: it copies the pruned tree",
    );
    const exposed = runtime.instructions.filter((i) => i.op === "EXPOSE").flatMap((i) => i.args.split(/\s+/).map(Number));
    assert.deepEqual(new Set(exposed), new Set([PORTS.manager, PORTS.scheduler, PORTS.peerUpload, PORTS.peerProxy, PORTS.peerMetrics]));
  });

  it("its build steps run in a clean copy of the tree: npm ci, the build, the prune", async (t) => {
    if (skip) return t.skip(skip);
    const build = replayed[0]!;
    const runs = build.stage.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    assert.ok(runs.some((c) => /^npm ci\b/.test(c)) && runs.includes("npm run build") && runs.some((c) => /^npm prune --omit=dev\b/.test(c)), runs.join("\n"));
    assert.deepEqual(
      build.skipped.map((c) => c.split(" ")[0]),
      ["apt-get"],
      "only the system packages are not replayed",
    );
    if (build.cached.length) t.diagnostic(`from the layer cache: ${build.cached.join(" | ")}`);
    const src = join(build.root, build.workdir);
    await stat(join(src, "dist/kiln.mjs"));
    await stat(join(src, "node_modules/better-sqlite3/build/Release/better_sqlite3.node"));
    await assert.rejects(stat(join(src, "node_modules/typescript")), "dev dependencies pruned");
  });

  it("the runtime stage starts as its user: `kiln up` comes up from what it copied", async (t) => {
    if (skip) return t.skip(skip);
    const runtime = replayed.at(-1)!;
    assert.ok(runtime.entrypoint, "an ENTRYPOINT");
    const [exe, ...rest] = runtime.entrypoint.map((a) => (a === "node" ? process.execPath : a.startsWith("/") ? join(runtime.root, a) : a));
    const dataDir = join(work, "data");
    await mkdir(dataDir);
    await chown(dataDir, IMAGE_USER.uid, IMAGE_USER.gid);
    const ports = ["--manager-port", "--scheduler-port", "--peer-port", "--proxy-port", "--metrics-port", "--seed-port", "--seed-metrics-port"].flatMap((f) => [
      f,
      "0",
    ]);
    const proc = spawn(exe!, [...rest, "up", "--host", "127.0.0.1", "--data-dir", dataDir, ...ports], {
      cwd: join(runtime.root, runtime.workdir),
      uid: IMAGE_USER.uid,
      gid: IMAGE_USER.gid,
      env: { PATH: process.env.PATH, HOME: dataDir, KILN_ROOT_PASSWORD: "dockerfile-test-password" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    t.after(() => proc.kill("SIGKILL"));
    proc.stdout.resume();
    const stderr: string[] = [];
    const up = await new Promise<boolean>((resolve) => {
      createInterface({ input: proc.stderr }).on("line", (l) => {
        stderr.push(l);
        if (l.includes("kiln is up")) resolve(true);
      });
      proc.once("exit", () => resolve(false));
    });
    assert.ok(up, stderr.join("\n"));
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  });
});
