/**
 * Task identity against the vectors taken from Dragonfly's own Go and Rust tests
 * (a copy of shared/vectors/task-id.json in test/fixtures/), plus kiln's blob-digest keying rules.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { KilnError } from "../../src/common/errors.js";
import { filterUrl, isTaskId, parseBlobUrl, parseFilter, taskIdFor, urlTaskId } from "../../src/common/task-id.js";

interface UrlCase {
  url: string;
  piece_length: number | null;
  tag: string;
  application: string;
  filtered_query_params: string[];
  revision: string;
  expected: string;
  from: string;
}
interface FilterCase {
  url: string;
  filters: string[];
  expected_url: string;
  error?: boolean;
  from: string;
}
interface BlobCase {
  url: string;
  expected: string | null;
  error?: boolean;
  from: string;
}
interface Vectors {
  url_based: UrlCase[];
  filter_cases: FilterCase[];
  blob_digest: BlobCase[];
  default_filtered_query_params: string[];
}

const vectors = JSON.parse(readFileSync(new URL("../fixtures/task-id.json", import.meta.url), "utf8")) as Vectors;

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const HEX64 = "b2c366cce7e68013d5441c6326d5a3e1b12aeb5ed58564d0fd3fa089bc29cb6e";

describe("task ID vectors (Dragonfly Go + Rust)", () => {
  it("the vector file has every section the tests rely on", () => {
    assert.ok(vectors.url_based.length >= 14);
    assert.ok(vectors.filter_cases.length >= 4);
    assert.ok(vectors.blob_digest.length >= 7);
  });

  for (const [i, v] of vectors.url_based.entries()) {
    const name = `url_based #${i} (${v.from}): ${v.url} tag=${JSON.stringify(v.tag)} app=${JSON.stringify(v.application)} rev=${JSON.stringify(v.revision)} pieceLength=${v.piece_length} filters=${v.filtered_query_params.join("&")}`;
    it(name, () => {
      const input = {
        url: v.url,
        tag: v.tag,
        application: v.application,
        revision: v.revision,
        filteredQueryParams: v.filtered_query_params,
        ...(v.piece_length === null ? {} : { pieceLength: v.piece_length }),
      };
      assert.equal(urlTaskId(input), v.expected);
      // None of these is a blob URL, so the ID kiln uses is the URL-based one.
      assert.equal(taskIdFor(input), v.expected);
      assert.ok(isTaskId(v.expected));
    });
  }

  for (const [i, v] of vectors.filter_cases.entries()) {
    if (v.error) {
      it(`filter_cases #${i} (${v.from}): ${JSON.stringify(v.url)} is refused as BAD_REQUEST`, () => {
        assert.throws(
          () => filterUrl(v.url, v.filters),
          (err: unknown) => err instanceof KilnError && err.code === "BAD_REQUEST" && err.status === 400 && /invalid URL/.test(err.message),
        );
        // And a task ID cannot be computed for it either (Rust semantics: an error, not a hash of "").
        assert.throws(() => urlTaskId({ url: v.url, filteredQueryParams: v.filters }), KilnError);
      });
    } else {
      it(`filter_cases #${i} (${v.from}): ${v.url} minus [${v.filters.join(",")}]`, () => {
        assert.equal(filterUrl(v.url, v.filters), v.expected_url);
      });
    }
  }

  for (const [i, v] of vectors.blob_digest.entries()) {
    if (v.error) {
      it(`blob_digest #${i} (${v.from}): ${v.url} is not a blob`, () => {
        assert.equal(parseBlobUrl(v.url), undefined);
      });
    } else {
      it(`blob_digest #${i} (${v.from}): ${v.url}`, () => {
        const ref = parseBlobUrl(v.url);
        assert.ok(ref, "recognised as a blob URL");
        assert.equal(ref.hex, v.expected);
        assert.equal(ref.digest, `${ref.algorithm}:${v.expected}`);
        assert.equal(taskIdFor({ url: v.url }), v.expected);
      });
    }
  }

  it("the default filter list of the vectors contains the proxy default Expires&Signature&ns", () => {
    for (const k of parseFilter("Expires&Signature&ns")) assert.ok(vectors.default_filtered_query_params.includes(k), k);
  });
});

describe("filterUrl", () => {
  it("keeps the remaining parameters in their original order and drops an emptied query", () => {
    assert.equal(filterUrl("https://cdn.example.com/f.iso?z=1&Expires=9&a=2&Signature=s", ["Expires", "Signature"]), "https://cdn.example.com/f.iso?z=1&a=2");
    assert.equal(filterUrl("https://cdn.example.com/f.iso?Expires=9&Signature=s", ["Expires", "Signature"]), "https://cdn.example.com/f.iso");
  });

  it("leaves user-info out: credentials in a URL name the same task as none, and never appear in the filtered URL", () => {
    const bare = "http://files.example/data.bin?Expires=1&keep=2";
    const withUser = "http://alice:s3cret@files.example/data.bin?Expires=1&keep=2";
    assert.equal(filterUrl(withUser, ["Expires"]), "http://files.example/data.bin?keep=2");
    assert.equal(taskIdFor({ url: withUser, filteredQueryParams: ["Expires"] }), taskIdFor({ url: bare, filteredQueryParams: ["Expires"] }));
  });

  it("matches keys case-sensitively", () => {
    assert.equal(filterUrl("https://e.com/f?expires=1&Expires=2", ["Expires"]), "https://e.com/f?expires=1");
  });

  it("signed URLs that differ only in filtered parameters get the same task ID", () => {
    const filters = parseFilter("Expires&Signature&ns");
    const a = taskIdFor({ url: "https://bucket.example.com/big.iso?Expires=1700000000&Signature=abc&v=3", filteredQueryParams: filters });
    const b = taskIdFor({ url: "https://bucket.example.com/big.iso?v=3&Signature=zzz&Expires=1800000000", filteredQueryParams: filters });
    assert.equal(a, b);
    assert.notEqual(a, taskIdFor({ url: "https://bucket.example.com/big.iso?v=4&Expires=1", filteredQueryParams: filters }));
  });

  it("a URL with no query is hashed as its WHATWG serialisation (bare '/' path dropped)", () => {
    assert.equal(urlTaskId({ url: "https://example.com/" }), sha256("https://example.comSTANDARD"));
    assert.equal(urlTaskId({ url: "https://example.com/a/" }), sha256("https://example.com/a/STANDARD"));
  });

  it("property: filtering never leaves a filtered key and never adds a key", () => {
    const key = fc.constantFrom("Expires", "Signature", "ns", "a", "b", "X-Amz-Date");
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, fc.stringMatching(/^[a-z0-9]{0,6}$/)), { maxLength: 8 }),
        fc.subarray(["Expires", "Signature", "ns", "a"]),
        (pairs, filters) => {
          const qs = pairs.map(([k, v]) => `${k}=${v}`).join("&");
          const out = new URL(filterUrl(`https://h.example/p${qs ? `?${qs}` : ""}`, filters));
          const keys = [...out.searchParams.keys()];
          assert.deepEqual(
            keys,
            pairs.map(([k]) => k).filter((k) => !filters.includes(k)),
          );
          if (keys.length === 0) assert.equal(out.search, "");
        },
      ),
    );
  });
});

describe("taskIdFor: OCI blobs are keyed by digest", () => {
  const blobUrls = [
    `https://registry-1.docker.io/v2/library/ubuntu/blobs/sha256:${HEX64}`,
    `http://127.0.0.1:5000/v2/library/ubuntu/blobs/sha256:${HEX64}`,
    `http://mirror.local:5000/v2/docker.io/library/ubuntu/blobs/sha256:${HEX64}`,
    `https://harbor.example.com/v2/proxy-cache/library/ubuntu/blobs/sha256:${HEX64}`,
    `http://localhost:5000/v2/library/ubuntu/blobs/sha256:${HEX64}?ns=docker.io`,
    `https://registry.example.com/v2/library/ubuntu/blobs/sha256:${HEX64}?X-Amz-Signature=abc&whatever=1`,
  ];

  it("the same digest gives the same ID whatever host, mirror namespace or query", () => {
    for (const url of blobUrls) {
      assert.equal(taskIdFor({ url }), HEX64, url);
      assert.equal(taskIdFor({ url, filteredQueryParams: parseFilter("Expires&Signature&ns") }), HEX64, url);
    }
  });

  it("a tag, an application or an explicit piece length switch to the URL-based ID", () => {
    const url = `http://localhost:5000/v2/library/ubuntu/blobs/sha256:${HEX64}?ns=docker.io`;
    const filteredQueryParams = ["ns"];
    const base = `http://localhost:5000/v2/library/ubuntu/blobs/sha256:${HEX64}`;
    const withTag = taskIdFor({ url, filteredQueryParams, tag: "t1" });
    assert.equal(withTag, sha256(`${base}t1STANDARD`));
    const withApp = taskIdFor({ url, filteredQueryParams, application: "app" });
    assert.equal(withApp, sha256(`${base}appSTANDARD`));
    const withPiece = taskIdFor({ url, filteredQueryParams, pieceLength: 8 * 1024 * 1024 });
    assert.equal(withPiece, sha256(`${base}8388608STANDARD`));
    for (const id of [withTag, withApp, withPiece]) assert.notEqual(id, HEX64);
    // Tagged IDs are URL-based, so the host matters again.
    assert.notEqual(taskIdFor({ url: blobUrls[0]!, tag: "t1" }), withTag);
  });

  it("empty tag and application count as absent", () => {
    assert.equal(taskIdFor({ url: blobUrls[0]!, tag: "", application: "" }), HEX64);
  });

  it("manifests and non-sha digests of the wrong length are not blobs", () => {
    assert.equal(parseBlobUrl(`https://r.example/v2/library/ubuntu/manifests/sha256:${HEX64}`), undefined);
    assert.equal(parseBlobUrl(`https://r.example/v2/library/ubuntu/blobs/sha256:${HEX64}00`), undefined);
    assert.equal(parseBlobUrl(`https://r.example/v2/library/ubuntu/blobs/sha512:${HEX64}`), undefined);
    assert.equal(parseBlobUrl("not a url"), undefined);
    assert.notEqual(taskIdFor({ url: `https://r.example/v2/library/ubuntu/manifests/sha256:${HEX64}` }), HEX64);
  });

  it("parseBlobUrl reports the repository, mirror namespace included", () => {
    assert.equal(parseBlobUrl(blobUrls[2]!)?.repository, "docker.io/library/ubuntu");
    assert.equal(parseBlobUrl(blobUrls[2]!)?.algorithm, "sha256");
  });

  it("every task ID kiln computes is a valid task ID", () => {
    fc.assert(
      fc.property(fc.webUrl({ withQueryParameters: true }), fc.string({ maxLength: 8 }), (url, tag) => {
        assert.ok(isTaskId(taskIdFor({ url, tag })));
      }),
      { numRuns: 200 },
    );
  });
});

describe("parseFilter / isTaskId", () => {
  it('parseFilter("Expires&Signature&ns")', () => {
    assert.deepEqual(parseFilter("Expires&Signature&ns"), ["Expires", "Signature", "ns"]);
  });

  it("parseFilter ignores empty parts and surrounding blanks", () => {
    assert.deepEqual(parseFilter(""), []);
    assert.deepEqual(parseFilter(undefined), []);
    assert.deepEqual(parseFilter("&Expires&& Signature &"), ["Expires", "Signature"]);
  });

  it("isTaskId accepts only 64/128 lowercase hex", () => {
    assert.ok(isTaskId(HEX64));
    assert.ok(isTaskId(HEX64 + HEX64));
    for (const bad of [HEX64.toUpperCase(), HEX64.slice(1), `${HEX64}0`, `../${HEX64.slice(3)}`, `${HEX64.slice(0, 60)}%2F.`, "", `${HEX64}\n`]) {
      assert.equal(isTaskId(bad), false, JSON.stringify(bad));
    }
  });
});
