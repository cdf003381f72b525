/**
 * A streaming reader of layer tarballs (ustar, PAX and GNU long names). Unlike a
 * general-purpose tar library it keeps what overlayfs needs byte for byte: PAX
 * `SCHILY.xattr.*` values as raw bytes, device numbers, and the link type.
 */
export type EntryType = "file" | "dir" | "symlink" | "link" | "char" | "block" | "fifo";

export interface TarHeader {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (PAX may give a fraction). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's content; read it before asking for the next entry, or it is skipped. */
  body: AsyncGenerator<Buffer>;
}

export class TarFormatError extends Error {}

const TYPES: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

/** Reads exact byte counts from a stream of chunks. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    }
    return this.buf.length >= n;
  }

  /** Exactly n bytes; null at a clean end of stream. */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.buf.length === 0) return null;
      throw new TarFormatError("layer tarball ends in the middle of a block");
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** n bytes as they arrive. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill(1))) throw new TarFormatError("layer tarball ends in the middle of a file");
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
      yield out;
    }
  }
}

function cstring(b: Buffer): string {
  const i = b.indexOf(0);
  return b.subarray(0, i < 0 ? b.length : i).toString("utf8");
}

function numeric(b: Buffer): number {
  // GNU base-256 for values that do not fit in octal.
  if (b[0]! & 0x80) {
    let n = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i]!;
    return n;
  }
  const s = cstring(b).trim();
  return s ? parseInt(s, 8) : 0;
}

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** PAX records: "<len> <key>=<value>\n", values kept as bytes. */
function parsePax(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < body.length) {
    const sp = body.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(body.subarray(i, sp).toString("ascii"), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > body.length) throw new TarFormatError("malformed PAX record");
    const record = body.subarray(sp + 1, i + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq > 0) out.set(record.subarray(0, eq).toString("utf8"), record.subarray(eq + 1));
    i += len;
  }
  return out;
}

async function readAll(gen: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of gen) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  let pax = new Map<string, Buffer>();
  let globalPax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await r.read(512);
    if (block === null || block.every((b) => b === 0)) return;
    if (!checksumOk(block)) throw new TarFormatError("bad tar header checksum");
    const flag = String.fromCharCode(block[156]!);
    const size = numeric(block.subarray(124, 136));
    const padded = Math.ceil(size / 512) * 512;
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      const body = (await readAll(r.chunks(padded))).subarray(0, size);
      if (flag === "x") pax = parsePax(body);
      else if (flag === "g") globalPax = new Map([...globalPax, ...parsePax(body)]);
      else if (flag === "L") longName = cstring(body);
      else longLink = cstring(body);
      continue;
    }
    const type = TYPES[flag];
    const ext = new Map([...globalPax, ...pax]);
    const ustar = block.subarray(257, 263).toString("latin1") === "ustar\0";
    const prefix = ustar ? cstring(block.subarray(345, 500)) : "";
    const name = cstring(block.subarray(0, 100));
    const str = (k: string) => ext.get(k)?.toString("utf8");
    const num = (k: string, fallback: number) => (ext.has(k) ? Number(str(k)) : fallback);
    const header: TarHeader = {
      path: str("path") ?? longName ?? (prefix ? `${prefix}/${name}` : name),
      type: type ?? "file",
      mode: numeric(block.subarray(100, 108)),
      uid: num("uid", numeric(block.subarray(108, 116))),
      gid: num("gid", numeric(block.subarray(116, 124))),
      size: num("size", size),
      mtime: num("mtime", numeric(block.subarray(136, 148))),
      linkname: str("linkpath") ?? longLink ?? cstring(block.subarray(157, 257)),
      devmajor: numeric(block.subarray(329, 337)),
      devminor: numeric(block.subarray(337, 345)),
      xattrs: new Map([...ext].filter(([k]) => k.startsWith("SCHILY.xattr.")).map(([k, v]) => [k.slice("SCHILY.xattr.".length), v])),
    };
    pax = new Map();
    longName = longLink = undefined;
    // Only regular files carry content; other types with a size are skipped whole.
    const dataSize = header.type === "file" ? header.size : 0;
    const body = r.chunks(dataSize);
    if (type === undefined) {
      for await (const _ of r.chunks(Math.ceil(header.size / 512) * 512)) void _;
      continue;
    }
    yield { header, body };
    for await (const _ of body) void _;
    const rest = Math.ceil(dataSize / 512) * 512 - dataSize + (header.type === "file" ? 0 : Math.ceil(header.size / 512) * 512);
    for await (const _ of r.chunks(rest)) void _;
  }
}
