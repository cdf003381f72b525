import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { containerdHostsToml } from "../../src/cli/config.js";
import { registryServer } from "../../src/common/net.js";

describe("kiln config containerd", () => {
  it("picks the registry's scheme: https by default, http for loopback or --insecure, registry-1 for docker.io", () => {
    assert.deepEqual(registryServer("registry.example.com"), { host: "registry.example.com", server: "https://registry.example.com" });
    assert.deepEqual(registryServer("registry.example.com:5000", true), { host: "registry.example.com:5000", server: "http://registry.example.com:5000" });
    assert.deepEqual(registryServer("127.0.0.1:5000"), { host: "127.0.0.1:5000", server: "http://127.0.0.1:5000" });
    assert.deepEqual(registryServer("docker.io"), { host: "docker.io", server: "https://registry-1.docker.io" });
    assert.deepEqual(registryServer("http://reg.local:8080/ignored"), { host: "reg.local:8080", server: "http://reg.local:8080" });
  });

  it("writes a per-registry file with the X-Dragonfly-Registry header, and a _default catch-all without a server", () => {
    const one = containerdHostsToml({ peer: "http://10.0.0.5:4001/", registry: "harbor.example.com" });
    assert.equal(one.path, "/etc/containerd/certs.d/harbor.example.com/hosts.toml");
    assert.match(one.content, /^server = "https:\/\/harbor\.example\.com"$/m);
    assert.match(one.content, /^\[host\."http:\/\/10\.0\.0\.5:4001"\]$/m);
    assert.match(one.content, /capabilities = \["pull", "resolve"\]/);
    assert.match(one.content, /X-Dragonfly-Registry = \["https:\/\/harbor\.example\.com"\]/);
    const all = containerdHostsToml({ peer: "http://10.0.0.5:4001" });
    assert.equal(all.path, "/etc/containerd/certs.d/_default/hosts.toml");
    assert.doesNotMatch(all.content, /server|X-Dragonfly-Registry/);
  });
});
