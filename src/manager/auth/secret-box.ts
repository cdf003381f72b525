/**
 * Seals job credentials at rest (AES-256-GCM). The key comes from KILN_SECRET_KEY
 * (base64 of 32 bytes; give every manager replica the same one, e.g. from a
 * Kubernetes Secret), else from `<data dir>/secret.key`, created 0600 at first start.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../../common/errors.js";

const VERSION = "v1";
const KEY_BYTES = 32;

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): SecretBox {
    if (key.length !== KEY_BYTES) throw new KilnError("BAD_REQUEST", `the secret key must be ${KEY_BYTES} bytes (base64), got ${key.length}`);
    return new SecretBox(key);
  }

  /** KILN_SECRET_KEY if given, else the key file under `dataDir` (made on first use). */
  static async load(dataDir: string, fromEnv = process.env.KILN_SECRET_KEY): Promise<SecretBox> {
    if (fromEnv) return SecretBox.fromKey(Buffer.from(fromEnv, "base64"));
    const file = join(dataDir, "secret.key");
    const existing = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    if (existing !== undefined) return SecretBox.fromKey(Buffer.from(existing.trim(), "base64"));
    const key = randomBytes(KEY_BYTES);
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // `wx`: two managers starting on one directory must not each write their own key.
    await writeFile(file, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    return SecretBox.fromKey(Buffer.from((await readFile(file, "utf8")).trim(), "base64"));
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return [VERSION, iv.toString("base64"), cipher.getAuthTag().toString("base64"), body.toString("base64")].join(":");
  }

  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split(":");
    if (version !== VERSION || !iv || !tag || body === undefined) throw new KilnError("INTERNAL", "stored credentials are not in a known sealed format");
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64"));
      decipher.setAuthTag(Buffer.from(tag, "base64"));
      return Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]).toString("utf8");
    } catch {
      throw new KilnError("INTERNAL", "stored credentials cannot be opened with this manager's secret key (was KILN_SECRET_KEY or secret.key changed?)");
    }
  }
}
