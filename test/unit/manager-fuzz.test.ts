/**
 * Property-based: whatever a client POSTs to /oapi/v1/jobs, the manager answers
 * with JSON and a status below 500; a refused body names the field at fault.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { startTestManager, createToken } from "../helpers/manager.js";
import type { RunningManager } from "../../src/manager/index.js";

const FIELD_NAMES = [
  "type",
  "args",
  "url",
  "urls",
  "pieceLength",
  "piece_length",
  "filteredQueryParams",
  "filtered_query_params",
  "headers",
  "scope",
  "ips",
  "count",
  "percentage",
  "platform",
  "timeout",
  "scheduler_cluster_ids",
  "username",
  "password",
  "tag",
  "application",
  "concurrent_task_count",
  "concurrent_peer_count",
  "bio",
  "body",
];

const value = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(
    "http://127.0.0.1:9/x",
    "https://r.example/v2/a/manifests/1",
    "image",
    "file",
    "preheat",
    "all_peers",
    "linux/amd64",
    "30m",
    4194304,
    -1,
    2 ** 53,
  ),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.constantFrom("127.0.0.1", "http://a/b")), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);
const args = fc.record(
  {
    type: fc.oneof(fc.constantFrom("image", "file"), value),
    url: fc.oneof(fc.constantFrom("http://127.0.0.1:9/x", "https://r.example/v2/lib/a/manifests/1", "nope", ""), value),
    urls: value,
    pieceLength: value,
    piece_length: value,
    filteredQueryParams: value,
    headers: value,
    scope: value,
    ips: value,
    count: value,
    percentage: value,
    platform: value,
    timeout: value,
    username: value,
    password: value,
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.record({ type: fc.oneof(fc.constant("preheat"), value), args: fc.oneof(args, value), scheduler_cluster_ids: value, bio: value }, { requiredKeys: [] }),
  value,
  fc.jsonValue(),
);
const raw = fc.oneof(
  body.map((b) => JSON.stringify(b) ?? "null"),
  fc.string(),
  body.map((b) => (JSON.stringify(b) ?? "").replace(/}$/, ",}")),
  fc.constantFrom("{", "[", '{"type":', "\u0000", '{"__proto__":{}}', "null", "1e999999"),
);

describe("POST /oapi/v1/jobs fuzzed", () => {
  let m: RunningManager;
  let token: string;
  before(async () => {
    // A rate limit high enough that the fuzzer never meets 429 and a default cluster without schedulers.
    m = await startTestManager("sqlite::memory:");
    token = (await createToken(m.url, ["job"])).token;
    await m.store.db
      .updateTable("scheduler_clusters")
      .set({ config: JSON.stringify({ job_rate_limit: 100000 }) })
      .execute();
  });
  after(async () => m?.close());

  it("never answers 5xx, always JSON, and names the bad field", async () => {
    await fc.assert(
      fc.asyncProperty(raw, fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded"), async (text, contentType) => {
        const res = await fetch(`${m.url}/oapi/v1/jobs`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": contentType },
          body: text,
        });
        const answer = await res.text();
        assert.ok(res.status < 500, `${res.status} for ${JSON.stringify(text)}: ${answer}`);
        const json = JSON.parse(answer);
        if (res.status === 200) {
          assert.equal(json.state, "PENDING");
          assert.equal(json.args.password, "");
          return;
        }
        assert.ok([400, 422].includes(res.status), `${res.status} ${answer}`);
        assert.equal(typeof json.message, "string");
        if (res.status === 422) {
          // Issues read "<field path>: <what is wrong>" joined by "; ", the path starting with a known field name
          // (odd record keys are quoted: args.headers[":"]).
          const issue = /^([A-Za-z_]+)(?:\.[\w-]+|\["(?:[^"\\]|\\.)*"\])*: \S/;
          const first = issue.exec(json.message);
          assert.ok(first && FIELD_NAMES.includes(first[1]!), `422 message names a field: ${json.message}`);
          for (const part of json.message.split("; ")) {
            const m = issue.exec(part);
            if (m) assert.ok(FIELD_NAMES.includes(m[1]!), `unknown field in: ${json.message}`);
          }
        }
      }),
      { numRuns: Number(process.env.KILN_FUZZ_RUNS ?? 400) },
    );
  });
});
