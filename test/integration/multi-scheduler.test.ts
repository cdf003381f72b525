/**
 * Several schedulers per cluster, as real processes: a manager, 3 schedulers, a seed
 * peer and 6 peers that learn the schedulers from the manager; 12 tasks, each owned by
 * the scheduler its task ID ranks first (rendezvous hashing). A scheduler killed with
 * SIGKILL while its tasks are half fetched: its downloads move to the next scheduler
 * of their ranking with the pieces they hold, every copy is right, the origin sends
 * each task once, and the other schedulers' tasks stay where they were. Then a
 * scheduler joins while tasks are in flight: those stay with their scheduler (new
 * peers of them are sent there), new tasks go to the newcomer, the origin still sends
 * each task once.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import { createServer } from "node:net";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { makeFile, startOrigin, type OriginFile, type TestOrigin } from "../helpers/origin.js";
import { spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { SchedulerClient } from "../../src/api/scheduler-client.js";
import { ManagerMembershipClient } from "../../src/api/manager-client.js";
import { DRAGONFLY_HEADERS } from "../../src/api/proxy.js";
import { rendezvousRank } from "../../src/common/rendezvous.js";
import { api, createToken, waitForJob } from "../helpers/manager.js";
import { taskIdFor } from "../../src/common/task-id.js";
import { defaultPieceLength } from "../../src/common/piece.js";

const MiB = 1024 * 1024;
const SECRET = "multi-scheduler-test-secret-0123456789abcdef";
const env = { KILN_CLUSTER_SECRET: SECRET };
/** Two pieces (4 MiB + 1 MiB); an origin answer held after the first piece leaves the task half fetched. */
const SIZE = 5 * MiB;
/** The default piece length of a SIZE file (common/piece.ts). */
const PIECE_BYTES = defaultPieceLength(SIZE);
const HOLD_AT = 4 * MiB + 64 * 1024;
const ROOT_PW = "multi-scheduler-root-pw-1";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Waits (polling) until `check` holds; fails with `what` when it never does within a generous bound. */
async function until(what: string, check: () => boolean | Promise<boolean>, boundMs = 60_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await sleep(100);
  }
}

/** GET `url` through a peer's proxy over P2P: the body's sha256, or the error. */
function download(proxyUrl: string, url: string): Promise<{ status: number; sha256: string }> {
  const proxy = new URL(proxyUrl);
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { [DRAGONFLY_HEADERS.useP2P]: "true" }, agent: false }, (res) => {
      const hash = createHash("sha256");
      res.on("data", (d: Buffer) => hash.update(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, sha256: hash.digest("hex") }));
      res.on("error", (err) => resolve({ status: 0, sha256: err.message }));
    });
    // A failed download is a failed assertion, never an unhandled rejection of a test that already ended.
    req.on("error", (err) => resolve({ status: 0, sha256: err.message }));
    req.end();
  });
}

/** `p`, or a failure naming `what` when it does not settle within a generous bound (so the logs are kept). */
function bounded<T>(what: string, p: Promise<T>, boundMs = 120_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`never finished: ${what}`)), boundMs);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

interface Node {
  name: string;
  proc: KilnProcess;
  proxyUrl: string;
}

describe("several schedulers per cluster", () => {
  let dir: string;
  let origin: TestOrigin;
  let manager: KilnProcess;
  let managerUrl: string;
  const schedulers = new Map<string, KilnProcess>();
  let seed: Node;
  const peers: Node[] = [];

  const startScheduler = async (port = 0) => {
    const proc = await spawnKiln(
      ["scheduler", "--host", "127.0.0.1", "--port", String(port), "--manager", managerUrl, "--advertise-ip", "127.0.0.1", "--host-timeout-ms", "5000"],
      { env },
    );
    const url = `http://127.0.0.1:${proc.ready.port as number}`;
    schedulers.set(url, proc);
    return url;
  };
  /** The schedulers the manager lists for a peer of this host. */
  const listed = async () =>
    (await new ManagerMembershipClient(managerUrl, SECRET).searchSchedulers({ hostname: "p", ip: "127.0.0.1", idc: "", location: "" })).schedulers.map(
      (s) => s.url,
    );
  const startNode = async (name: string, seedPeer: boolean): Promise<Node> => {
    const args = ["peer", "--manager", managerUrl, "--host", "127.0.0.1", "--advertise-ip", "127.0.0.1", "--hostname", name];
    args.push("--port", "0", "--metrics-port", "0", "--data-dir", join(dir, name), "--keepalive-ms", "500", "--schedulers-refresh-ms", "500");
    if (seedPeer) args.push("--seed");
    else args.push("--proxy-port", "0", "--proxy-allow-host", `127.0.0.1:${origin.port}`);
    const proc = await spawnKiln(args, { env });
    return { name, proc, proxyUrl: `http://127.0.0.1:${proc.ready.proxyPort as number}` };
  };
  /** Which schedulers have the task with a peer on it. */
  const holdersOf = async (taskId: string) => {
    const live = [...schedulers].filter(([, p]) => p.proc.exitCode === null && p.proc.signalCode === null);
    const known = await Promise.all(live.map(async ([url]) => ((await new SchedulerClient(url, SECRET).knowsTask(taskId, 5_000)).known ? url : "")));
    return known.filter(Boolean);
  };
  /** `count` paths whose tasks rank each of `owners` first, in turn, over `members`. */
  const pathsOwnedBy = (prefix: string, owners: string[], members: string[], count: number) => {
    const paths: string[] = [];
    for (let i = 0; paths.length < count; i++) {
      const path = `/${prefix}-${i}.bin`;
      const want = owners[paths.length % owners.length];
      if (rendezvousRank(taskIdFor({ url: `${origin.url}${path}` }), members)[0] === want) paths.push(path);
    }
    return paths;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-multi-scheduler-"));
    origin = await startOrigin();
    manager = await spawnKiln(
      ["manager", "--host", "127.0.0.1", "--port", "0", "--database-url", `sqlite:${join(dir, "manager.db")}`, "--keepalive-ms", "500"],
      { env: { ...env, KILN_ROOT_PASSWORD: ROOT_PW } },
    );
    managerUrl = `http://127.0.0.1:${manager.ready.port as number}`;
    for (let i = 0; i < 3; i++) await startScheduler();
    await until("the manager lists 3 schedulers", async () => (await listed()).length === 3);
    seed = await startNode("seed", true);
    for (let i = 1; i <= 6; i++) peers.push(await startNode(`peer-${i}`, false));
  });
  after(async () => {
    // KILN_TEST_LOGS=<dir>: every process's log lines, to read after a failure.
    const logs = process.env.KILN_TEST_LOGS;
    if (logs) {
      await mkdir(logs, { recursive: true });
      for (const n of [seed, ...peers].filter(Boolean)) await writeFile(join(logs, `${n.name}.log`), n.proc.lines.join("\n"));
      for (const [url, p] of schedulers) await writeFile(join(logs, `scheduler-${new URL(url).port}.log`), p.lines.join("\n"));
    }
    await Promise.all([seed, ...peers].map((n) => n?.proc.kill()));
    await Promise.all([...schedulers.values()].map((s) => s.kill()));
    await manager?.kill();
    await origin?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("3 schedulers, 12 tasks: the one holding 4 of them is killed mid-download; its tasks finish on the next scheduler, the origin sends each task once (its tasks: at most a piece more), the other tasks stay put", async (t) => {
    const members = [...schedulers.keys()];
    const paths = pathsOwnedBy("kill", members, members, 12);
    const files = new Map<string, OriginFile>(paths.map((p) => [p, makeFile(SIZE)]));
    for (const [p, f] of files) origin.add(p, f);
    const ownerOf = (p: string) => rendezvousRank(taskIdFor({ url: `${origin.url}${p}` }), members)[0]!;
    const victim = members[0]!;
    const victimPaths = paths.filter((p) => ownerOf(p) === victim);
    const otherPaths = paths.filter((p) => ownerOf(p) !== victim);
    assert.equal(victimPaths.length, 4);
    // The victim's tasks stop at the origin after their first piece, until it is dead.
    const releases = victimPaths.map((p) => origin.hold(p, HOLD_AT));

    const downloads = paths.flatMap((p) => peers.map((n) => download(n.proxyUrl, `${origin.url}${p}`).then((r) => ({ p, n: n.name, ...r }))));
    const byTask = new Map(paths.map((p) => [p, taskIdFor({ url: `${origin.url}${p}` })]));
    // Every task on the scheduler its ID ranks first, and only there.
    for (const p of paths) await until(`${p} registered on ${ownerOf(p)}`, async () => (await holdersOf(byTask.get(p)!)).join() === ownerOf(p));
    // Half fetched: the origin sent the victim's tasks up to the hold, and a peer holds their first piece.
    await until("the victim's tasks half fetched", () => victimPaths.every((p) => origin.sent.get(p) === HOLD_AT));
    await until("peers hold the first piece", async () => {
      const statuses = await Promise.all(victimPaths.map((p) => new SchedulerClient(victim, SECRET).taskStatus(byTask.get(p)!)));
      return statuses.every((s) => s.peers.some((x) => !x.isSeed && x.finishedPieces >= 1));
    });

    schedulers.get(victim)!.proc.kill("SIGKILL");
    await new Promise((r) => schedulers.get(victim)!.proc.once("exit", r));
    // Each of the victim's tasks moves to the next scheduler of its ranking (the peers' re-registrations).
    const live = members.filter((u) => u !== victim);
    for (const p of victimPaths) {
      const next = rendezvousRank(byTask.get(p)!, live)[0]!;
      await until(`${p} moved to ${next}`, async () => (await holdersOf(byTask.get(p)!)).join() === next);
    }
    for (const release of releases) release();

    const results = await bounded("the 72 downloads", Promise.all(downloads));
    for (const r of results) {
      assert.equal(r.status, 200, `${r.n} ${r.p}`);
      assert.equal(r.sha256, files.get(r.p)!.sha256, `${r.n} got ${r.p} right`);
    }
    // Known limit (README, several schedulers): a download of the killed scheduler's tasks may
    // fetch its one missing piece from the origin during the move (seen once in clean-clone CI:
    // 1 MiB more of a 5 MiB task). The other schedulers' tasks must not notice at all.
    for (const p of paths) {
      const sent = origin.sent.get(p)!;
      if (victimPaths.includes(p)) {
        if (sent !== SIZE) t.diagnostic(`the origin sent ${p} ${sent} bytes for ${SIZE} (the move's known limit)`);
        assert.ok(sent >= SIZE && sent <= SIZE + PIECE_BYTES, `the origin sent ${p} ${sent} bytes: at most one piece more than once`);
      } else assert.equal(sent, SIZE, `the origin sent ${p} once`);
    }
    // The tasks of the schedulers that lived never moved: no peer registered them again anywhere.
    for (const p of otherPaths) assert.deepEqual(await holdersOf(byTask.get(p)!), [ownerOf(p)], `${p} stayed on its scheduler`);
    const moved = [seed, ...peers].flatMap((n) => n.proc.lines.filter((l) => l.includes("registered again")).map((l) => JSON.parse(l).task as string));
    const otherIds = new Set(otherPaths.map((p) => byTask.get(p)));
    assert.deepEqual(
      moved.filter((t) => otherIds.has(t)),
      [],
      "no download of the other schedulers' tasks was registered again",
    );
    assert.ok(moved.length > 0, "downloads in progress on the killed scheduler were registered again");
  });

  it("a scheduler joins mid-run: tasks in flight stay with their scheduler, new tasks go to it, the origin sends each task once", async () => {
    const before = [...schedulers].filter(([, p]) => p.proc.exitCode === null && p.proc.signalCode === null).map(([u]) => u);
    assert.equal(before.length, 2);
    const port = await freePort();
    const joiner = `http://127.0.0.1:${port}`;
    const after = [...before, joiner];
    // In flight: tasks whose ranking puts the joiner first once it is there (and some that do not).
    const inFlight = [...pathsOwnedBy("flight-j", [joiner], after, 3), ...pathsOwnedBy("flight-o", before, after, 3)];
    const fresh = [...pathsOwnedBy("fresh-j", [joiner], after, 3), ...pathsOwnedBy("fresh-o", before, after, 3)];
    const files = new Map<string, OriginFile>([...inFlight, ...fresh].map((p) => [p, makeFile(SIZE)]));
    for (const [p, f] of files) origin.add(p, f);
    const idOf = (p: string) => taskIdFor({ url: `${origin.url}${p}` });
    const ownerBefore = (p: string) => rendezvousRank(idOf(p), before)[0]!;
    const releases = inFlight.map((p) => origin.hold(p, HOLD_AT));

    // Peers 1-3 start the in-flight tasks; they stop after the first piece.
    const first = inFlight.flatMap((p) => peers.slice(0, 3).map((n) => download(n.proxyUrl, `${origin.url}${p}`).then((r) => ({ p, n: n.name, ...r }))));
    await until("in-flight tasks half fetched", () => inFlight.every((p) => origin.sent.get(p) === HOLD_AT));

    await startScheduler(port);
    await until("the manager lists the joiner", async () => (await listed()).includes(joiner));
    for (const n of [seed, ...peers]) {
      await until(`${n.name} ranks over the joiner`, () => n.proc.lines.some((l) => l.includes('"event":"schedulers"') && l.includes(joiner)));
    }

    // Peers 4-6 join the in-flight tasks, and everyone fetches new ones.
    const later = [
      ...inFlight.flatMap((p) => peers.slice(3).map((n) => download(n.proxyUrl, `${origin.url}${p}`).then((r) => ({ p, n: n.name, ...r })))),
      ...fresh.flatMap((p) => peers.map((n) => download(n.proxyUrl, `${origin.url}${p}`).then((r) => ({ p, n: n.name, ...r })))),
    ];
    // The in-flight tasks' new peers went to the scheduler that had them, not to the joiner.
    await until("peers 4-6 registered the in-flight tasks", async () => {
      const statuses = await Promise.all(inFlight.map((p) => new SchedulerClient(ownerBefore(p), SECRET).taskStatus(idOf(p))));
      return statuses.every((s) => s.peers.filter((x) => !x.isSeed).length === 6);
    });
    for (const release of releases) release();

    const results = await bounded("the downloads", Promise.all([...first, ...later]));
    for (const r of results) {
      assert.equal(r.status, 200, `${r.n} ${r.p}`);
      assert.equal(r.sha256, files.get(r.p)!.sha256, `${r.n} got ${r.p} right`);
    }
    for (const p of [...inFlight, ...fresh]) assert.equal(origin.sent.get(p), SIZE, `the origin sent ${p} once`);
    for (const p of inFlight) assert.deepEqual(await holdersOf(idOf(p)), [ownerBefore(p)], `in-flight ${p} stayed on ${ownerBefore(p)}`);
    for (const p of fresh) {
      const owner = rendezvousRank(idOf(p), after)[0]!;
      assert.deepEqual(await holdersOf(idOf(p)), [owner], `new task ${p} on ${owner}`);
    }
    assert.ok((await new SchedulerClient(joiner, SECRET).stats()).tasks >= 3, "the joiner holds the new tasks that rank it first");
  });

  it("a preheat job whose scheduler is killed while the seed peer fetches it ends SUCCESS, the origin sending it once", async () => {
    const live = [...schedulers].filter(([, p]) => p.proc.exitCode === null && p.proc.signalCode === null).map(([u]) => u);
    const [path] = pathsOwnedBy("preheat", [live[0]!], live, 1);
    const file = makeFile(SIZE);
    origin.add(path!, file);
    const taskId = taskIdFor({ url: `${origin.url}${path}` });
    const release = origin.hold(path!, HOLD_AT);
    const { token } = await createToken(managerUrl, ["job"], { password: ROOT_PW });
    const r = await api(`${managerUrl}/oapi/v1/jobs`, { token, body: { type: "preheat", args: { type: "file", url: `${origin.url}${path}` } } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // The manager asked the task's scheduler; the seed peer is half way through the origin's answer.
    await until("the preheat's task on its scheduler", async () => (await holdersOf(taskId)).join() === live[0]);
    await until("the seed half way", () => origin.sent.get(path!) === HOLD_AT);
    schedulers.get(live[0]!)!.proc.kill("SIGKILL");
    await new Promise((res) => schedulers.get(live[0]!)!.proc.once("exit", res));
    const next = rendezvousRank(taskId, live.slice(1))[0]!;
    await until(`the preheat's task moved to ${next}`, async () => (await holdersOf(taskId)).join() === next);
    release();
    const job = await waitForJob(managerUrl, token, r.json.id);
    assert.equal(job.state, "SUCCESS", JSON.stringify(job.result, null, 2));
    assert.equal(origin.sent.get(path!), SIZE, "the origin sent the preheated file once");
  });
});
