import assert from "node:assert/strict";
import { test } from "node:test";
import { sentence } from "../../console/src/lib/field-message.js";

test("zod's stock wording becomes a sentence", () => {
  assert.equal(sentence("Too small: expected string to have >=1 characters"), "Must not be empty.");
  assert.equal(sentence("Too big: expected string to have <=64 characters"), "Must be at most 64 characters.");
  assert.equal(sentence("Invalid string: must match pattern /^(?:\\d+)$/"), "Is not in the expected form.");
});

test("bytes under a field in MiB are said in MiB", () => {
  assert.equal(sentence("must be at least 4194304 bytes (4 MiB)", "MiB"), "Must be at least 4 MiB.");
  assert.equal(sentence("must be at most 1073741824 bytes (1024 MiB)", "MiB"), "Must be at most 1024 MiB.");
  assert.equal(sentence("must be at least 4194304 bytes (4 MiB)"), "Must be at least 4194304 bytes (4 MiB).");
});

test("a repeated message is said once", () => {
  assert.equal(sentence("must be an IP address; must be an IP address"), "Must be an IP address.");
  assert.equal(sentence("must be a string; must be at most 1024 characters"), "Must be a string. Must be at most 1024 characters.");
});
