/**
 * `kiln manager` as a process: ready line with the bound port, root's generated
 * password printed once on stderr and forced to change, `kiln token` end to end.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runKiln, spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { api } from "../helpers/manager.js";

describe("kiln manager and kiln token", () => {
  let dir: string | undefined;
  let manager: KilnProcess | undefined;
  after(async () => {
    await manager?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("starts on --port 0 with SQLite under --data-dir; root must change the printed password before making tokens", async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-manager-cli-"));
    manager = await spawnKiln(["manager", "--host", "127.0.0.1", "--port", "0", "--data-dir", dir], { env: { KILN_ROOT_PASSWORD: "" } });
    assert.equal(manager.ready.component, "manager");
    const port = manager.ready.port as number;
    assert.ok(port > 0);
    const url = `http://127.0.0.1:${port}`;
    assert.equal(manager.ready.database, "sqlite");
    // Printed once, on stderr, never in the JSON log.
    // stderr may trail stdout's ready line a little: wait for it.
    for (let i = 0; i < 100 && !manager.stderr.some((l) => l.includes('created user "root"')); i++) await new Promise((r) => setTimeout(r, 20));
    const line = manager.stderr.find((l) => l.includes('created user "root"'));
    assert.ok(line, manager.stderr.join("\n"));
    const password = /password (\S+) /.exec(line)![1]!;
    assert.ok(!manager.lines.some((l) => l.includes(password)), "the password is not in the JSON log");
    // The database (password and token hashes, sealed credentials) and the kept password are the manager's alone.
    assert.equal((await stat(join(dir, "manager.db"))).mode & 0o777, 0o600);
    const kept = join(dir, "initial-root-password");
    assert.match(line, new RegExp(`also in ${kept}, mode 0600`));
    assert.equal((await stat(kept)).mode & 0o777, 0o600);
    assert.equal((await readFile(kept, "utf8")).trim(), password);

    const env = { KILN_MANAGER: url, KILN_MANAGER_PASSWORD: password };
    const refused = await runKiln(["token", "create", "--scope", "job"], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /must be changed first: kiln token password/);
    const changed = await runKiln(["token", "password", "--new-password", "a-better-password"], { env });
    assert.equal(changed.code, 0, changed.stderr);

    // A wrong password says whose sign-in was refused and where, not just "Unauthorized".
    const wrong = await runKiln(["token", "list", "--password", "not-it"], { env });
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.stderr,
      new RegExp(`^kiln token list: the manager at ${url.replaceAll(".", "\\.")} refused the sign-in of root: wrong user name or password`),
    );

    const env2 = { KILN_MANAGER: url, KILN_MANAGER_PASSWORD: "a-better-password" };
    const created = await runKiln(["token", "create", "--scope", "job", "--scope", "cluster", "--name", "ci", "--expires-in", "2d"], { env: env2 });
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.equal((await api(`${url}/oapi/v1/clusters`, { token })).status, 200);
    assert.equal((await api(`${url}/oapi/v1/jobs`, { token })).status, 200);

    const list = await runKiln(["token", "list"], { env: env2 });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /active\s+job,cluster\s+\S+\s+ci/);
    assert.ok(!list.stdout.includes(token));
    const id = list.stdout.trim().split(/\s+/)[0]!;
    const revoked = await runKiln(["token", "revoke", id], { env: env2 });
    assert.equal(revoked.code, 0, revoked.stderr);
    const after = await api(`${url}/oapi/v1/jobs`, { token });
    assert.equal(after.status, 403);
    assert.deepEqual(after.json, { message: "Token is inactive" });

    // A second start on the same data directory keeps root and prints nothing.
    await manager.kill();
    manager = await spawnKiln(["manager", "--host", "127.0.0.1", "--port", "0", "--data-dir", dir], { env: { KILN_ROOT_PASSWORD: "" } });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!manager.stderr.some((l) => l.includes('created user "root"')));
    // Changed: the kept copy of the first password is gone.
    await assert.rejects(stat(kept), { code: "ENOENT" });
    const wrongUrl = await runKiln(["token", "create", "--manager", "http://127.0.0.1:9"], { env: env2 });
    assert.equal(wrongUrl.code, 1);
    assert.match(wrongUrl.stderr, /unreachable/);
  });
});
