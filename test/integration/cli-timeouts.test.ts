/**
 * The CLI's one timeout policy for the manager: a manager that accepts the connection
 * and never answers is given up on after --request-timeout (or KILN_REQUEST_TIMEOUT),
 * with a message naming what did not answer and how to wait longer.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { runKiln } from "../helpers/proc.js";

describe("kiln commands against a manager that never answers", () => {
  let server: net.Server;
  let url: string;
  const sockets = new Set<net.Socket>();

  before(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const silent = (stderr: string, command: string, within: string) =>
    assert.match(
      stderr,
      new RegExp(
        `^kiln ${command}: ${url.replace(/[.]/g, "\\.")} unreachable: accepted the connection but sent no answer within ${within} \\(--request-timeout or KILN_REQUEST_TIMEOUT sets how long to wait\\)\\n$`,
      ),
    );

  it("kiln preheat file --request-timeout 1s", async () => {
    const r = await runKiln(["preheat", "file", "http://origin.invalid/f", "--manager", url, "--request-timeout", "1s"], { env: { KILN_TOKEN: "kiln_pat_x" } });
    assert.equal(r.code, 1);
    silent(r.stderr, "preheat file", "1 s");
  });

  it("kiln puller list and kiln token list with KILN_REQUEST_TIMEOUT", async () => {
    const env = { KILN_TOKEN: "kiln_pat_x", KILN_MANAGER_PASSWORD: "x", KILN_REQUEST_TIMEOUT: "2s" };
    const list = await runKiln(["puller", "list", "--manager", url], { env });
    assert.equal(list.code, 1);
    silent(list.stderr, "puller list", "2 s");
    const tokens = await runKiln(["token", "list", "--manager", url], { env });
    assert.equal(tokens.code, 1);
    silent(tokens.stderr, "token list", "2 s");
  });
});
