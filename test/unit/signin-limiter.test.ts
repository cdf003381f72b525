import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SignInLimiter } from "../../src/manager/auth/signin-limiter.js";

describe("sign-in limiter", () => {
  const limits = { maxFailures: 3, windowMs: 60_000 };

  it("locks a name and address pair after the limit, until the oldest counted failure leaves the window", () => {
    const l = new SignInLimiter(limits);
    for (const t of [0, 10_000, 20_000]) {
      assert.equal(l.retryAfterSeconds("root", "10.0.0.1", t), 0);
      l.failed("root", "10.0.0.1", t);
    }
    assert.equal(l.retryAfterSeconds("root", "10.0.0.1", 30_000), 30, "the failure at 0 s leaves the window at 60 s");
    assert.equal(l.retryAfterSeconds("root", "10.0.0.1", 60_001), 0);
  });

  it("counts each pair on its own, and a success clears the pair", () => {
    const l = new SignInLimiter(limits);
    for (let i = 0; i < 3; i++) l.failed("root", "10.0.0.1", 1000);
    assert.ok(l.retryAfterSeconds("root", "10.0.0.1", 1000) > 0);
    assert.equal(l.retryAfterSeconds("root", "10.0.0.2", 1000), 0, "the real user elsewhere is not locked out");
    assert.equal(l.retryAfterSeconds("alice", "10.0.0.1", 1000), 0);
    l.failed("alice", "10.0.0.1", 1000);
    l.succeeded("alice", "10.0.0.1");
    l.failed("alice", "10.0.0.1", 1000);
    l.failed("alice", "10.0.0.1", 1000);
    assert.equal(l.retryAfterSeconds("alice", "10.0.0.1", 1000), 0, "two failures since the success");
  });
});
