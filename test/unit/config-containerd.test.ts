import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerdHostsToml } from "../../src/cli/config.js";
import { KILN_HOSTS_MARK, planHostsDir, syncHostsDir } from "../../src/cli/containerd-hosts-dir.js";
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

  it("--proxy-config: a hosts.toml for each registry the proxy allows; wildcards and bare docker.io are named as skipped", () => {
    const peer = "http://10.0.0.5:4001";
    const plan = planHostsDir(["registry.example.com", "*.example.org", "docker.io", "10.0.0.7:5000"], peer);
    assert.deepEqual([...plan.files.keys()], ["registry.example.com", "10.0.0.7:5000"]);
    assert.equal(plan.files.get("registry.example.com"), containerdHostsToml({ peer, registry: "registry.example.com" }).content);
    assert.deepEqual(
      plan.skipped.map((s) => s.split(":")[0]),
      ["*.example.org", "docker.io"],
    );
    assert.deepEqual([...planHostsDir(["docker.io", "registry-1.docker.io"], peer).files.keys()], ["docker.io"], "Docker Hub under containerd's name for it");
    assert.deepEqual([...planHostsDir(["*"], peer).files.keys()], ["_default"], "an open proxy: the catch-all");
  });

  it("--hosts-dir: rewrites and removes only what kiln wrote, the earlier catch-all included; an operator's own file stays", async (t) => {
    const root = await mkdtemp(join(tmpdir(), "kiln-certs-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    const peer = "http://10.0.0.5:4001";
    const put = async (dir: string, content: string) => {
      await mkdir(join(root, dir), { recursive: true });
      await writeFile(join(root, dir, "hosts.toml"), content);
    };
    await put("_default", containerdHostsToml({ peer }).content); // what the init step wrote before
    await put("old.example.com", `${KILN_HOSTS_MARK}\nserver = "https://old.example.com"\n`);
    await put("own.example.com", 'server = "https://own.example.com"\n');
    const report = await syncHostsDir(root, planHostsDir(["registry.example.com", "own.example.com"], peer), peer);
    assert.deepEqual((await readdir(root)).sort(), ["own.example.com", "registry.example.com"]);
    assert.equal(await readFile(join(root, "own.example.com/hosts.toml"), "utf8"), 'server = "https://own.example.com"\n');
    assert.equal(
      await readFile(join(root, "registry.example.com/hosts.toml"), "utf8"),
      `${KILN_HOSTS_MARK}\n${containerdHostsToml({ peer, registry: "registry.example.com" }).content}`,
    );
    assert.deepEqual(
      report.map((l) => l.split(" ")[0]),
      ["removed", "removed", "wrote", "left"],
    );
  });
});
