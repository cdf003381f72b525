import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProxyPolicy } from "../../src/peer/proxy/rules.js";
import { defaultProxyPolicy, loadProxyConfigFile, HostPattern } from "../../src/api/proxy-config.js";

const BLOB = `/v2/library/app/blobs/sha256:${"a".repeat(64)}`;
const policy = (o: Parameters<typeof defaultProxyPolicy>[0] = {}) => new ProxyPolicy(defaultProxyPolicy(o));
const act = (p: ProxyPolicy, url: string, method = "GET", useP2P?: boolean, local = false) => p.decide(new URL(url), method, useP2P, local).action;

describe("proxy policy", () => {
  it("by default refuses every host: no open proxy", () => {
    const p = policy();
    for (const url of ["http://example.com/", `https://registry.example.com${BLOB}`, "http://127.0.0.1:5000/v2/", "http://169.254.169.254/latest/meta-data"]) {
      const d = p.decide(new URL(url), "GET");
      assert.equal(d.action, "refuse", url);
      assert.match(d.reason, /not on this proxy's allowed hosts/);
      assert.equal(d.cause, "host", 'counted as kiln_peer_proxy_refused_total{cause="host"}');
    }
    assert.equal(p.openProxy, false);
  });

  it("for allowed hosts: registry blob GETs go P2P, the rest (manifests, HEADs, pushes) directly", () => {
    const p = policy({ allowHosts: ["registry.example.com"] });
    assert.equal(act(p, `https://registry.example.com${BLOB}`), "p2p");
    assert.equal(act(p, `https://registry.example.com${BLOB}?ns=registry.example.com`), "p2p");
    assert.equal(act(p, `https://registry.example.com${BLOB}`, "HEAD"), "direct");
    assert.equal(act(p, `https://registry.example.com${BLOB}/extra`), "direct");
    assert.equal(act(p, "https://registry.example.com/v2/library/app/manifests/v1"), "direct");
    assert.equal(act(p, "https://registry.example.com/v2/library/app/blobs/uploads/", "POST"), "direct");
    assert.equal(act(p, "https://other.example.com/v2/"), "refuse");
  });

  it("matches hosts by name, port, wildcard and IPv6 literal", () => {
    const p = policy({ allowHosts: ["reg.local:5000", "*.example.com", "[::1]:8080", "10.0.0.7"] });
    assert.equal(act(p, "http://reg.local:5000/v2/"), "direct");
    assert.equal(act(p, "http://reg.local:5001/v2/"), "refuse");
    assert.equal(act(p, "http://REG.LOCAL:5000/v2/"), "direct");
    assert.equal(act(p, "https://a.example.com/x"), "direct");
    assert.equal(act(p, "https://a.b.example.com:444/x"), "direct");
    assert.equal(act(p, "https://example.com/x"), "refuse", "*.example.com is subdomains only");
    assert.equal(act(p, "https://badexample.com/x"), "refuse");
    assert.equal(act(p, "http://[::1]:8080/x"), "direct");
    assert.equal(act(p, "http://[::1]:8081/x"), "refuse");
    assert.equal(act(p, "http://10.0.0.7:9999/x"), "direct");
    assert.equal(p.allowsHost("reg.local", "5000"), true);
    assert.equal(p.allowsHost("reg.local", "443"), false);
  });

  it("CONNECT: a port-less pattern allows 443 only; a pattern with a port allows that port", () => {
    const p = policy({ allowHosts: ["registry.example.com", "reg.local:5000", "*.example.org"] });
    assert.equal(p.allowsConnect("registry.example.com", "443"), true);
    assert.equal(p.allowsConnect("registry.example.com", "22"), false);
    assert.equal(p.allowsConnect("registry.example.com", "5000"), false);
    assert.equal(p.allowsConnect("reg.local", "5000"), true);
    assert.equal(p.allowsConnect("reg.local", "443"), false);
    assert.equal(p.allowsConnect("a.example.org", "443"), true);
    assert.equal(p.allowsConnect("a.example.org", "3306"), false);
    assert.equal(p.allowsConnect("other.example.com", "443"), false);
    assert.equal(policy({ allowHosts: ["*"] }).allowsConnect("any.host", "22"), false, "even * tunnels only to 443 without a port");
  });

  it("a port-less pattern means the URL's effective port (80/443) too", () => {
    const p = policy({ allowHosts: ["reg.local:443"] });
    assert.equal(act(p, "https://reg.local/v2/"), "direct");
    assert.equal(act(p, "http://reg.local/v2/"), "refuse");
  });

  it("* allows every host and says it is open", () => {
    const p = policy({ allowHosts: ["*"] });
    assert.equal(act(p, "http://anything.invalid:1234/x"), "direct");
    assert.equal(p.openProxy, true);
  });

  it("rules: first match wins; refuse beats the client's X-Dragonfly-Use-P2P", () => {
    const p = policy({
      allowHosts: ["*"],
      rules: [
        { regex: "^https?://[^/]+/private/", action: "refuse" },
        { regex: "\\.iso$", action: "p2p" },
        { regex: "/blobs/", action: "direct" },
      ],
    });
    assert.equal(act(p, "https://h/private/a.iso"), "refuse");
    assert.equal(act(p, "https://h/private/a.iso", "GET", true), "refuse");
    assert.match(p.decide(new URL("https://h/private/x"), "GET").reason, /proxy rule "\^https\?:\/\/\[\^\/\]\+\/private\/" refuses/);
    assert.equal(p.decide(new URL("https://h/private/x"), "GET").cause, "rule");
    assert.equal(act(p, "https://h/pub/a.iso"), "p2p");
    assert.equal(act(p, `https://h${BLOB}`), "direct", "custom rules replace the default blob rule");
    assert.equal(act(p, "https://h/other"), "direct");
  });

  it("X-Dragonfly-Use-P2P opts in and out per request, for GETs only", () => {
    const p = policy({ allowHosts: ["h"] });
    assert.equal(act(p, "http://h/file.bin", "GET", true), "p2p");
    assert.equal(act(p, `http://h${BLOB}`, "GET", false), "direct");
    assert.equal(act(p, "http://h/file.bin", "PUT", true), "direct");
  });

  it("a loopback client (kiln get) may download any host through P2P, but not forward or tunnel to it", () => {
    const p = policy();
    assert.equal(act(p, "http://files.example.com/a.bin", "GET", true, true), "p2p");
    assert.equal(act(p, "http://files.example.com/a.bin", "GET", undefined, true), "refuse");
    assert.equal(act(p, "http://files.example.com/a.bin", "GET", false, true), "refuse");
    assert.equal(act(p, "http://files.example.com/a.bin", "POST", true, true), "refuse");
    assert.equal(act(p, "http://files.example.com/a.bin", "GET", true, false), "refuse");
  });

  it("host patterns reject what is not a host", () => {
    for (const ok of ["a", "reg.example.com", "reg:5000", "*.example.com", "*", "[::1]", "[fe80::1]:443", "10.1.2.3"])
      assert.ok(HostPattern.safeParse(ok).success, ok);
    for (const bad of ["", "http://reg", "reg/x", "a b", "*.*.x", "reg:", "reg:123456", "ex*ample.com"]) assert.ok(!HostPattern.safeParse(bad).success, bad);
  });
});

describe("proxy config file", () => {
  const withFile = async (content: string, fn: (path: string) => Promise<void>) => {
    const dir = await mkdtemp(join(tmpdir(), "kiln-proxycfg-"));
    try {
      await writeFile(join(dir, "proxy.yaml"), content);
      await fn(join(dir, "proxy.yaml"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it("reads allowHosts, rules, interceptHosts and defaultFilter", async () => {
    await withFile(
      [
        "allowHosts: [registry.example.com, '*.mirror.local']",
        "interceptHosts: [registry.example.com]",
        "defaultFilter: X-Amz-Signature",
        "rules:",
        "  - regex: 'blobs/sha256'",
        "    action: p2p",
        "  - regex: '.*'",
        "    action: direct",
      ].join("\n"),
      async (path) => {
        const cfg = await loadProxyConfigFile(path);
        assert.deepEqual(cfg.allowHosts, ["registry.example.com", "*.mirror.local"]);
        assert.deepEqual(cfg.interceptHosts, ["registry.example.com"]);
        assert.equal(cfg.defaultFilter, "X-Amz-Signature");
        assert.deepEqual(cfg.rules, [
          { regex: "blobs/sha256", action: "p2p" },
          { regex: ".*", action: "direct" },
        ]);
      },
    );
  });

  it("names the file and the field when something is wrong", async () => {
    const cases: [string, RegExp][] = [
      ["rules: [{regex: '(', action: p2p}]", /proxy\.yaml: rules\.0\.regex: not a valid regular expression/],
      ["rules: [{regex: 'x', action: cache}]", /rules\.0\.action/],
      ["allowHosts: ['http://x']", /allowHosts\.0: expected host/],
      ["allowHost: [x]", /Unrecognized key.*allowHost/i],
      ["rules: [{regex: x, action: p2p, useHTTPS: true}]", /rules\.0.*useHTTPS/],
      ["allowHosts: [a\n  b: :", /proxy\.yaml: /],
      ["- just\n- a list", /proxy\.yaml: \(root\)/],
    ];
    for (const [content, want] of cases) {
      await withFile(content, async (path) => {
        await assert.rejects(loadProxyConfigFile(path), (err: Error) => {
          assert.match(err.message, want, content);
          return true;
        });
      });
    }
  });

  it("an empty file is the defaults", async () => {
    await withFile("", async (path) => {
      assert.deepEqual(await loadProxyConfigFile(path), { allowHosts: [], interceptHosts: [] });
    });
  });
});
