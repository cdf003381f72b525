/**
 * Debian's docker-registry (CNCF distribution 2.8) on loopback, with optional
 * basic or token auth, and images built as OCI layouts and pushed with skopeo.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { connect, createServer as createNetServer } from "node:net";
import { createServer as createHttpServer, type Server } from "node:http";
import { mkdtemp, mkdir, writeFile, rm } from "node:fs/promises";
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { prerequisitesMissing } from "./prereq.js";
import { HTPASSWD, REGISTRY_PASSWORD, REGISTRY_USER, TOKEN_CERT_PEM, TOKEN_KEY_PEM } from "./registry-fixtures.js";

const execFileP = promisify(execFile);

export type RegistryAuth = "none" | "basic" | "token-anonymous" | "token-credentials";

export interface TestRegistry {
  /** http(s)://<address>:<port> */
  url: string;
  /** <address>:<port> */
  host: string;
  auth: RegistryAuth;
  /** Access-log lines (method and path) seen so far. */
  requests(): string[];
  /** Count of GETs of this blob digest. */
  blobGets(digest: string): number;
  /** Count of GETs of this blob digest that it answered with the content (200 or 206), not a refusal. */
  blobsServed(digest: string): number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Tools the registry tests need; under CI=true their absence fails the test instead of skipping it. */
export function registryToolsMissing(): Promise<string | undefined> {
  return prerequisitesMissing("registry test", { "docker-registry": "docker-registry", skopeo: "skopeo" });
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

/** A token service that signs registry JWTs (ES256, certificate in x5c) like Docker Hub's auth server. */
function startTokenServer(requireCredentials: boolean, service: string, issuer: string): Promise<{ server: Server; url: string }> {
  const key = createPrivateKey(TOKEN_KEY_PEM);
  const certDer = new X509Certificate(TOKEN_CERT_PEM).raw.toString("base64");
  const server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const auth = req.headers.authorization ?? "";
    let subject = "";
    if (auth.startsWith("Basic ")) {
      const [user, pass] = Buffer.from(auth.slice(6), "base64").toString().split(":");
      if (user !== REGISTRY_USER || pass !== REGISTRY_PASSWORD) {
        res.writeHead(401, { "content-type": "application/json" }).end('{"details":"wrong credentials"}');
        return;
      }
      subject = user;
    } else if (requireCredentials) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"details":"credentials required"}');
      return;
    }
    const access = url.searchParams.getAll("scope").flatMap((scope) => {
      const [type, name, actions] = scope.split(":");
      return type && name && actions ? [{ type, name, actions: actions.split(",") }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "ES256", x5c: [certDer] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + 600, nbf: now - 60, iat: now, jti: randomBytes(8).toString("hex"), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
    const token = `${signingInput}.${b64url(signature)}`;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, access_token: token, expires_in: 600 }));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/token` })),
  );
}

export interface RegistryOptions {
  /** Address to listen on (default 127.0.0.1). Go clients never use a proxy for loopback targets. */
  address?: string;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}

export async function startRegistry(auth: RegistryAuth = "none", opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-registry-"));
  const port = await freePort();
  const host = `${opts.address ?? "127.0.0.1"}:${port}`;
  const scheme = opts.tls ? "https" : "http";
  const tlsYaml = opts.tls ? `  tls:\n    certificate: ${opts.tls.cert}\n    key: ${opts.tls.key}\n` : "";
  let authYaml = "";
  let tokenServer: Server | undefined;
  if (auth === "basic") {
    await writeFile(join(dir, "htpasswd"), HTPASSWD);
    authYaml = `auth:\n  htpasswd:\n    realm: kiln-test\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (auth.startsWith("token")) {
    await writeFile(join(dir, "token.crt"), TOKEN_CERT_PEM);
    const ts = await startTokenServer(auth === "token-credentials", "kiln-test-registry", "kiln-test-issuer");
    tokenServer = ts.server;
    authYaml = `auth:\n  token:\n    realm: ${ts.url}\n    service: kiln-test-registry\n    issuer: kiln-test-issuer\n    rootcertbundle: ${join(dir, "token.crt")}\n`;
  }
  const config = `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: ${host}
  secret: kiln-test-secret
${tlsYaml}${authYaml}`;
  await writeFile(join(dir, "config.yml"), config);
  const proc: ChildProcess = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  const onData = (d: Buffer) => log.push(...d.toString().split("\n").filter(Boolean));
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  // Ready when /v2/ answers (200 or 401).
  for (let i = 0; ; i++) {
    try {
      // Any answer, TLS or not, means it listens.
      const up = await new Promise<boolean>((resolve) => {
        const sock = connect(port, opts.address ?? "127.0.0.1", () => {
          sock.destroy();
          resolve(true);
        }).on("error", () => resolve(false));
      });
      if (!up) throw new Error("not yet");
      break;
    } catch {
      if (proc.exitCode !== null || i > 200) throw new Error(`docker-registry did not start:\n${log.join("\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const requests = () =>
    log.filter((l) => /"(GET|HEAD|PUT|POST|PATCH|DELETE) \//.test(l)).map((l) => /"((?:GET|HEAD|PUT|POST|PATCH|DELETE) [^ ]+)/.exec(l)![1]!);
  return {
    url: `${scheme}://${host}`,
    host,
    auth,
    requests,
    blobGets: (digest) => requests().filter((r) => r.startsWith("GET ") && r.includes(`/blobs/${digest}`)).length,
    blobsServed: (digest) => log.filter((l) => new RegExp(`"GET /v2/[^ ]+/blobs/${digest} HTTP/[\\d.]+" 20[06] `).test(l)).length,
    async stop() {
      // Stopped before (killed by a signal: exitCode stays null): nothing to wait for.
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      tokenServer?.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const OCI = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};

interface Blob {
  digest: string;
  size: number;
  mediaType: string;
}

export interface BuiltImage {
  layout: string;
  tag: string;
  /** Per platform ("linux/amd64"): config and layer digests, manifest digest. */
  platforms: Record<string, { manifest: string; config: string; layers: string[] }>;
  /** Digest of the top-level index (multi-arch) or manifest. */
  digest: string;
  cleanup(): Promise<void>;
}

/** A one-file ustar archive: a valid, uncompressed image layer. */
export function tarOf(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (text: string, off: number, len: number) => header.write(text.slice(0, len), off, len, "ascii");
  const octal = (n: number, len: number) => `${n.toString(8).padStart(len - 1, "0")}\0`;
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(data.length, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  put("        ", 148, 8);
  put("0", 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of header) sum += b;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

/** A self-signed certificate (it is its own CA) for `ip`, made by openssl: cert.pem and key.pem in `dir`. */
export async function selfSignedCert(dir: string, ip: string): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await execFileP("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-keyout",
    key,
    "-out",
    cert,
    "-subj",
    `/CN=${ip}`,
    "-addext",
    `subjectAltName=IP:${ip}`,
  ]);
  return { cert, key };
}

/** Writes an OCI image layout with random layers: one platform, or an index of several. */
export async function buildOciImage(opts: { platforms: string[]; layers?: number; layerBytes?: number; tag?: string }): Promise<BuiltImage> {
  const layout = await mkdtemp(join(tmpdir(), "kiln-oci-"));
  const blobs = join(layout, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (data: Buffer, mediaType: string): Promise<Blob> => {
    const hex = createHash("sha256").update(data).digest("hex");
    await writeFile(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length, mediaType };
  };
  const platforms: BuiltImage["platforms"] = {};
  const manifests: (Blob & { platform: { os: string; architecture: string; variant?: string } })[] = [];
  for (const p of opts.platforms) {
    const [os, architecture, variant] = p.split("/") as [string, string, string | undefined];
    const layers: Blob[] = [];
    const diffIds: string[] = [];
    for (let i = 0; i < (opts.layers ?? 2); i++) {
      // A real (tar) layer, so that containerd and Podman can unpack it.
      const tar = tarOf(`layer-${i}.bin`, randomBytes(opts.layerBytes ?? 64 * 1024));
      diffIds.push(`sha256:${createHash("sha256").update(tar).digest("hex")}`);
      layers.push(await put(gzipSync(tar, { level: 1 }), OCI.layer));
    }
    const config = await put(
      Buffer.from(JSON.stringify({ architecture, os, ...(variant ? { variant } : {}), rootfs: { type: "layers", diff_ids: diffIds }, config: {} })),
      OCI.config,
    );
    const manifest = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config, layers })), OCI.manifest);
    platforms[p] = { manifest: manifest.digest, config: config.digest, layers: layers.map((l) => l.digest) };
    manifests.push({ ...manifest, platform: { os, architecture, ...(variant ? { variant } : {}) } });
  }
  const tag = opts.tag ?? "v1";
  let top: Blob;
  if (manifests.length === 1) top = manifests[0]!;
  else top = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests })), OCI.index);
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: { "org.opencontainers.image.ref.name": tag } }],
    }),
  );
  return { layout, tag, platforms, digest: top.digest, cleanup: () => rm(layout, { recursive: true, force: true }) };
}

/** skopeo copy (all platforms) of the layout into `<registry>/<repository>:<tag>`; `docker` converts to Docker v2 schema 2 media types. */
export async function pushImage(image: BuiltImage, registry: TestRegistry, repository: string, format: "oci" | "docker" = "oci"): Promise<void> {
  const creds = registry.auth === "none" || registry.auth === "token-anonymous" ? [] : ["--dest-creds", `${REGISTRY_USER}:${REGISTRY_PASSWORD}`];
  await execFileP(
    "skopeo",
    [
      "copy",
      "--all",
      ...(format === "docker" ? ["--format", "v2s2"] : ["--preserve-digests"]),
      "--dest-tls-verify=false",
      ...creds,
      `oci:${image.layout}:${image.tag}`,
      `docker://${registry.host}/${repository}:${image.tag}`,
    ],
    { timeout: 60_000 },
  );
}
