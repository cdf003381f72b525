/** `--require-secret`: which variables each daemon needs, and the one line it stops with. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { assertSecretsSet } from "../../src/cli/cluster-secret.js";

describe("--require-secret", () => {
  it("names every required variable that is unset or blank, and a present-but-empty database or Redis URL", () => {
    assert.throws(
      () => assertSecretsSet("manager", { KILN_CLUSTER_SECRET: "s", KILN_SECRET_KEY: " ", KILN_DATABASE_URL: "" }),
      /^Error: --require-secret: KILN_SECRET_KEY, KILN_ROOT_PASSWORD, KILN_DATABASE_URL unset or empty: set them in the installation's Secret/,
    );
    assert.throws(() => assertSecretsSet("peer", {}), /^Error: --require-secret: KILN_CLUSTER_SECRET unset or empty: set it /);
    assert.doesNotThrow(
      () => assertSecretsSet("manager", { KILN_CLUSTER_SECRET: "s", KILN_SECRET_KEY: "k", KILN_ROOT_PASSWORD: "p" }),
      "no database URL: SQLite",
    );
    assert.doesNotThrow(() => assertSecretsSet("scheduler", { KILN_CLUSTER_SECRET: "s" }));
  });
});
