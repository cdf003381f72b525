import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseLenientJson, stripTrailingCommas } from "../../src/manager/http/json-body.js";
import { normalizeArgs, viewArgs, argUrls } from "../../src/manager/jobs/args.js";
import { RateLimiter } from "../../src/manager/jobs/rate-limit.js";
import { PreheatArgsInput } from "../../src/api/preheat.js";
import { timeoutSeconds } from "../../src/common/go-duration.js";
import { parseDatabaseUrl, maskUrl } from "../../src/manager/db/database.js";
import { describeIssues } from "../../src/manager/http/errors.js";

describe("lenient JSON bodies", () => {
  it("accepts trailing commas outside strings, leaves strings alone", () => {
    assert.deepEqual(parseLenientJson('{"a": [1, 2,], "b": "x,}",\n}'), { a: [1, 2], b: "x,}" });
    assert.equal(stripTrailingCommas('{"s":"a\\",]"}'), '{"s":"a\\",]"}');
  });
  it("still refuses malformed JSON and __proto__ keys", () => {
    assert.throws(() => parseLenientJson("{"), /not valid JSON/);
    assert.throws(() => parseLenientJson('{"a":,}'), /not valid JSON/);
    assert.throws(() => parseLenientJson('{"__proto__": {"x": 1}}'), /not valid JSON/);
    assert.equal(parseLenientJson("   "), undefined);
  });
});

describe("preheat args", () => {
  it("stores the canonical spelling without credentials and shows the documented defaults", () => {
    const input = PreheatArgsInput.parse({ type: "image", url: "https://r/v2/a/manifests/1", filtered_query_params: "X", username: "u", password: "p" });
    const { stored, secret } = normalizeArgs(input);
    assert.deepEqual(stored, { type: "image", url: "https://r/v2/a/manifests/1", filteredQueryParams: "X" });
    assert.deepEqual(secret, { username: "u", password: "p" });
    assert.deepEqual(viewArgs(stored), {
      filteredQueryParams: "X",
      headers: null,
      password: "",
      pieceLength: 4194304,
      platform: "",
      tag: "",
      type: "image",
      url: "https://r/v2/a/manifests/1",
      username: "",
    });
  });
  it("keeps an explicit piece length (it is part of the task ID) and lists url then urls once each", () => {
    const { stored } = normalizeArgs(PreheatArgsInput.parse({ type: "file", url: "http://a/1", urls: ["http://a/2", "http://a/1"], pieceLength: 4194304 }));
    assert.equal(stored.pieceLength, 4194304);
    assert.deepEqual(argUrls(stored), ["http://a/1", "http://a/2"]);
    const { stored: s2 } = normalizeArgs(PreheatArgsInput.parse({ type: "file", url: "http://a/1" }));
    assert.equal(s2.pieceLength, undefined);
  });
  it("reads timeouts as seconds, Go durations, or Go nanoseconds", () => {
    assert.equal(timeoutSeconds(90), 90);
    assert.equal(timeoutSeconds("1h30m"), 5400);
    assert.equal(timeoutSeconds("500ms"), 0.5);
    assert.equal(timeoutSeconds(30_000_000_000), 30);
  });
});

describe("job rate limit", () => {
  it("lets `rate` jobs through per second per cluster, then says how long to wait", () => {
    let now = 0;
    const rl = new RateLimiter(() => now);
    assert.equal(rl.take([{ clusterId: 1, rate: 2 }]), 0);
    assert.equal(rl.take([{ clusterId: 1, rate: 2 }]), 0);
    assert.ok(rl.take([{ clusterId: 1, rate: 2 }]) > 0);
    assert.equal(rl.take([{ clusterId: 2, rate: 2 }]), 0, "clusters have their own buckets");
    now += 500;
    assert.equal(rl.take([{ clusterId: 1, rate: 2 }]), 0);
    // A job for two clusters is refused as a whole when one is full, and costs neither.
    assert.ok(
      rl.take([
        { clusterId: 1, rate: 2 },
        { clusterId: 2, rate: 2 },
      ]) > 0,
    );
    assert.equal(rl.take([{ clusterId: 2, rate: 2 }]), 0);
  });
});

describe("database URLs and error messages", () => {
  it("chooses the dialect from the URL and masks passwords", () => {
    assert.equal(parseDatabaseUrl("sqlite:./x.db").dialect, "sqlite");
    assert.equal(parseDatabaseUrl("mysql://u:p@h/db").dialect, "mysql");
    assert.equal(parseDatabaseUrl("mariadb://u:p@h/db").location, "mysql://u:p@h/db");
    assert.equal(parseDatabaseUrl("postgresql://h/db").dialect, "postgres");
    assert.throws(() => parseDatabaseUrl("redis://x"), /unsupported database URL/);
    assert.equal(maskUrl("postgres://kiln:secret@db:5432/kiln"), "postgres://kiln:***@db:5432/kiln");
  });
  it("names the field of each validation issue", () => {
    assert.equal(
      describeIssues("body", [
        { instancePath: "/args/url", message: "required" },
        { instancePath: "/", message: "bad" },
      ]),
      "args.url: required; body: bad",
    );
    assert.equal(
      describeIssues("body", [
        { instancePath: "/args/headers/a b", message: "x" },
        { instancePath: "/args/ips/0", message: "y" },
      ]),
      'args.headers["a b"]: x; args.ips.0: y',
    );
  });
});
