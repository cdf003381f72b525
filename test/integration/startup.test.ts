/**
 * Start-up as an operator meets it: a taken port is one line naming the flag (and
 * nothing is created before the check), every port of `kiln up` is a flag, and logs
 * are JSON when piped and readable lines when asked.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { KILN_BIN, runKiln, spawnKiln } from "../helpers/proc.js";
import { freePort } from "../helpers/registry.js";

/** Holds a port on 127.0.0.1 until closed. */
async function occupy(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("start-up errors and log output", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("a taken port is one line naming the flag, exit 2, for every server command", async () => {
    const taken = await occupy();
    try {
      const dir = await mkdtemp(join(tmpdir(), "kiln-startup-"));
      dirs.push(dir);
      const cases: [string[], string][] = [
        [["scheduler", "--host", "127.0.0.1", "--port", String(taken.port)], "--port"],
        [["manager", "--host", "127.0.0.1", "--port", String(taken.port), "--data-dir", join(dir, "m")], "--port"],
        [
          ["peer", "--host", "127.0.0.1", "--port", "0", "--proxy-port", String(taken.port), "--metrics-port", "0", "--data-dir", join(dir, "p")],
          "--proxy-port",
        ],
      ];
      for (const [args, flag] of cases) {
        const r = await runKiln(args, { timeoutMs: 30_000 });
        assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
        assert.equal(lines[0], `kiln ${args[0]}: port ${taken.port} on 127.0.0.1 is in use by another process; use ${flag} to choose another`);
      }
      // The manager checked before creating its database (and root's one-time password).
      await assert.rejects(readdir(join(dir, "m")), { code: "ENOENT" });
    } finally {
      await taken.close();
    }
  });

  it("kiln up checks all seven ports before creating anything, and takes each as a flag", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-up-ports-"));
    dirs.push(dir);
    const taken = await occupy();
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const flags = (seedMetrics: number) => [
      "up",
      "--host",
      "127.0.0.1",
      "--data-dir",
      dir,
      "--manager-port",
      String(ports[0]),
      "--scheduler-port",
      String(ports[1]),
      "--peer-port",
      String(ports[2]),
      "--proxy-port",
      String(ports[3]),
      "--metrics-port",
      String(ports[4]),
      "--seed-port",
      String(ports[5]),
      "--seed-metrics-port",
      String(seedMetrics),
    ];
    try {
      const refused = await runKiln(flags(taken.port), { timeoutMs: 30_000 });
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(refused.stderr.trim(), `kiln up: port ${taken.port} on 127.0.0.1 is in use by another process; use --seed-metrics-port to choose another`);
      assert.deepEqual(await readdir(dir), [], "nothing created: no database, no password, no cluster secret");
    } finally {
      await taken.close();
    }
    const up = await spawnKiln(flags(await freePort()), { env: { KILN_ROOT_PASSWORD: "" }, timeoutMs: 60_000 });
    try {
      for (let i = 0; i < 200 && !up.stderr.some((l) => l.startsWith("  peer ")); i++) await new Promise((r) => setTimeout(r, 25));
      const banner = up.stderr.join("\n");
      assert.match(banner, new RegExp(`manager\\s+http://127\\.0\\.0\\.1:${ports[0]}`));
      assert.match(banner, new RegExp(`seed peer\\s+upload :${ports[5]}`));
      assert.match(banner, new RegExp(`peer\\s+upload :${ports[2]}, proxy :${ports[3]}, metrics :${ports[4]}`));
      const health = await fetch(`http://127.0.0.1:${ports[3]}/healthy`);
      assert.equal(health.status, 200);
    } finally {
      await up.kill();
    }
  });

  it("logs are JSON when piped, readable lines with --log-format pretty", async () => {
    const json = await spawnKiln(["scheduler", "--host", "127.0.0.1", "--port", "0"]);
    await json.kill();
    assert.ok(json.lines.length > 0 && json.lines.every((l) => JSON.parse(l).component === "scheduler"), json.lines.join("\n"));

    const proc = spawn(process.execPath, [KILN_BIN, "scheduler", "--host", "127.0.0.1", "--port", "0", "--log-format", "pretty"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line in:\n${out}`)), 20_000);
      proc.stdout.on("data", (d: Buffer) => {
        out += d;
        if (out.includes("scheduler listening")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    proc.kill();
    const line = out.split("\n").find((l) => l.includes("scheduler listening"))!;
    assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.*scheduler: scheduler listening/);
    assert.throws(() => JSON.parse(line));
    const bad = await runKiln(["scheduler", "--log-format", "xml"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /argument 'xml' is invalid\. Allowed choices are json, pretty/);
  });
});
