/**
 * kiln's own certificate authority for HTTPS interception: the peer terminates a
 * client's CONNECT with a leaf certificate for the requested host, signed by this
 * CA, so that blob downloads inside the tunnel can be served through P2P. Clients
 * trust it after `kiln ca export` (nothing is trusted implicitly).
 *
 * Files: `<dir>/ca.crt` (PEM) and `<dir>/ca.key` (PKCS#8 PEM, mode 0600).
 */
import "reflect-metadata";
import { webcrypto, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { createSecureContext, type SecureContext } from "node:tls";
import { KilnError } from "../../common/errors.js";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
const CA_VALIDITY_DAYS = 3650;
/** Under the 398 days browsers and Go's tooling accept for leaf certificates. */
const LEAF_VALIDITY_DAYS = 365;
/** Leaf certificates per CA kept in memory (one per intercepted host). */
const LEAF_CACHE_SIZE = 1000;

export const CA_FILES = { cert: "ca.crt", key: "ca.key" } as const;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function derOf(pemText: string): Buffer {
  return Buffer.from(pemText.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}

/** A random positive serial number (RFC 5280: at most 20 octets, positive). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString("hex");
}

async function writePrivate(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export class CertificateAuthority {
  private readonly leaves = new Map<string, Promise<SecureContext>>();

  private constructor(
    readonly certPem: string,
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {}

  /** Loads the CA from `dir`, creating it (key mode 0600) on first use. */
  static async loadOrCreate(dir: string): Promise<CertificateAuthority> {
    const certPath = join(dir, CA_FILES.cert);
    const keyPath = join(dir, CA_FILES.key);
    let certPem: string | undefined;
    let keyPem: string | undefined;
    try {
      [certPem, keyPem] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new KilnError("INTERNAL", `cannot read the CA in ${dir}: ${(err as Error).message}`, 500);
    }
    if (certPem && keyPem) {
      try {
        const key = await webcrypto.subtle.importKey("pkcs8", derOf(keyPem), KEY_ALGORITHM, false, ["sign"]);
        return new CertificateAuthority(certPem, new x509.X509Certificate(certPem), key as CryptoKey);
      } catch (err) {
        throw new KilnError(
          "INTERNAL",
          `the CA in ${dir} is unreadable (${(err as Error).message}); move ${CA_FILES.cert} and ${CA_FILES.key} away to create a new one`,
          500,
        );
      }
    }
    const keys = (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=kiln proxy CA ${randomBytes(4).toString("hex")}, O=kiln`,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + CA_VALIDITY_DAYS * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writePrivate(keyPath, pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey as webcrypto.CryptoKey)));
    const newPem = `${cert.toString("pem")}\n`;
    await writeFile(certPath, newPem, { mode: 0o644 });
    return new CertificateAuthority(newPem, cert, keys.privateKey);
  }

  /** A TLS context presenting a certificate for `host` (DNS name or IP), made once per host. */
  contextFor(host: string): Promise<SecureContext> {
    const name = host.toLowerCase().replace(/^\[|\]$/g, "");
    let ctx = this.leaves.get(name);
    if (!ctx) {
      if (this.leaves.size >= LEAF_CACHE_SIZE) this.leaves.delete(this.leaves.keys().next().value!);
      ctx = this.issueLeaf(name);
      this.leaves.set(name, ctx);
      ctx.catch(() => this.leaves.delete(name));
    }
    return ctx;
  }

  private async issueLeaf(host: string): Promise<SecureContext> {
    const keys = (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
    const now = Date.now();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${host}`,
      issuer: this.cert.subject,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + LEAF_VALIDITY_DAYS * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: this.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: isIP(host) ? "ip" : "dns", value: host }]),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert.publicKey),
      ],
    });
    const keyPem = pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey as webcrypto.CryptoKey));
    return createSecureContext({ key: keyPem, cert: `${leaf.toString("pem")}\n${this.certPem}` });
  }
}
