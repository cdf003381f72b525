import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { once } from "node:events";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority, CA_FILES } from "../../src/peer/proxy/ca.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-ca-"));
  try {
    await fn(join(dir, "ca"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The certificate a TLS client sees for `servername` from a server using `ca`'s contexts. */
async function presented(ca: CertificateAuthority, host: string): Promise<{ cert: X509Certificate; authorized: boolean; error?: string }> {
  const server = tls.createServer({ SNICallback: (name, cb) => ca.contextFor(name).then((c) => cb(null, c), cb) }, (s) => s.end());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  try {
    const sock = tls.connect({ host: "127.0.0.1", port, servername: host, ca: ca.certPem, rejectUnauthorized: false });
    await once(sock, "secureConnect");
    const out = { cert: new X509Certificate(sock.getPeerX509Certificate()!.raw), authorized: sock.authorized, error: sock.authorizationError?.toString() };
    sock.destroy();
    return out;
  } finally {
    server.close();
  }
}

describe("kiln's interception CA", () => {
  it("creates its key with mode 0600 and a CA certificate; a second start loads the same CA", async () => {
    await withDir(async (dir) => {
      const a = await CertificateAuthority.loadOrCreate(dir);
      assert.equal((await stat(join(dir, CA_FILES.key))).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      const cert = new X509Certificate(a.certPem);
      assert.equal(cert.ca, true);
      assert.match(cert.subject, /CN=kiln proxy CA/);
      const b = await CertificateAuthority.loadOrCreate(dir);
      assert.equal(b.certPem, a.certPem);
      assert.equal(await readFile(join(dir, CA_FILES.cert), "utf8"), a.certPem);
    });
  });

  it("issues leaf certificates a client trusting only the CA accepts, for DNS names and IPs", async () => {
    await withDir(async (dir) => {
      const ca = await CertificateAuthority.loadOrCreate(dir);
      const caCert = new X509Certificate(ca.certPem);
      for (const host of ["registry.example.com", "localhost"]) {
        const { cert, authorized, error } = await presented(ca, host);
        assert.ok(authorized, `${host}: ${error}`);
        assert.equal(cert.subjectAltName, `DNS:${host}`);
        assert.equal(cert.ca, false);
        assert.ok(cert.checkIssued(caCert) && cert.verify(caCert.publicKey), "signed by the CA");
        const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
        assert.ok(days > 300 && days < 398, `valid for ${days.toFixed(0)} days (under the 398 clients accept)`);
      }
      const ctx = await ca.contextFor("10.1.2.3");
      assert.ok(ctx, "a context for an IP");
      assert.equal(await ca.contextFor("10.1.2.3"), ctx, "one leaf per host, cached");
    });
  });

  it("a damaged key is reported with what to do, not replaced silently", async () => {
    await withDir(async (dir) => {
      await CertificateAuthority.loadOrCreate(dir);
      await writeFile(join(dir, CA_FILES.key), "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
      await assert.rejects(CertificateAuthority.loadOrCreate(dir), /unreadable .*move ca\.crt and ca\.key away/);
    });
  });
});
