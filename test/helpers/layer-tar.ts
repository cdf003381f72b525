/**
 * Writes image layers the way docker/buildkit do (ustar + PAX records): directories,
 * files with modes and owners, symlinks, hard links, device nodes, xattrs
 * (SCHILY.xattr.*), whiteouts (.wh.<name>) and opaque directories (.wh..wh..opq),
 * and an OCI image layout of such layers.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { BuiltImage } from "./registry.js";

export type TarEntry =
  | { type: "dir"; path: string; mode?: number; uid?: number; gid?: number; xattrs?: Record<string, Buffer | string> }
  | { type: "file"; path: string; data: Buffer | string; mode?: number; uid?: number; gid?: number; xattrs?: Record<string, Buffer | string> }
  | { type: "symlink"; path: string; target: string; uid?: number; gid?: number }
  /** Like docker, a hard link's header carries the target file's mode and owner (containerd applies them to the inode). */
  | { type: "link"; path: string; target: string; mode: number; uid?: number; gid?: number }
  | { type: "char" | "block"; path: string; major: number; minor: number; mode?: number }
  | { type: "fifo"; path: string; mode?: number }
  | { type: "whiteout"; path: string }
  | { type: "opaque"; dir: string };

const TYPEFLAG = { file: "0", link: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" } as const;
const MTIME = 1_700_000_000;

function header(
  name: string,
  typeflag: string,
  o: { mode: number; uid: number; gid: number; size: number; linkname?: string; major?: number; minor?: number },
): Buffer {
  const h = Buffer.alloc(512);
  const put = (text: string, off: number, len: number) => h.write(text.slice(0, len), off, len, "utf8");
  const octal = (n: number, len: number) => `${n.toString(8).padStart(len - 1, "0")}\0`;
  put(name, 0, 100);
  put(octal(o.mode, 8), 100, 8);
  put(octal(o.uid, 8), 108, 8);
  put(octal(o.gid, 8), 116, 8);
  put(octal(o.size, 12), 124, 12);
  put(octal(MTIME, 12), 136, 12);
  put("        ", 148, 8);
  put(typeflag, 156, 1);
  put(o.linkname ?? "", 157, 100);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  put(octal(o.major ?? 0, 8), 329, 8);
  put(octal(o.minor ?? 0, 8), 337, 8);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function withPax(name: string, records: Buffer[], main: Buffer[]): Buffer[] {
  if (!records.length) return main;
  const body = Buffer.concat(records);
  return [header(`PaxHeaders/${name}`.slice(0, 99), "x", { mode: 0o644, uid: 0, gid: 0, size: body.length }), body, pad(body.length), ...main];
}

export function layerTar(entries: TarEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    if (e.type === "whiteout") {
      const i = e.path.lastIndexOf("/");
      const name = i < 0 ? `.wh.${e.path}` : `${e.path.slice(0, i)}/.wh.${e.path.slice(i + 1)}`;
      out.push(header(name, "0", { mode: 0o644, uid: 0, gid: 0, size: 0 }));
      continue;
    }
    if (e.type === "opaque") {
      out.push(header(`${e.dir}/.wh..wh..opq`, "0", { mode: 0o644, uid: 0, gid: 0, size: 0 }));
      continue;
    }
    const records: Buffer[] = [];
    let name = e.type === "dir" ? `${e.path}/` : e.path;
    if (Buffer.byteLength(name) > 99) {
      records.push(paxRecord("path", Buffer.from(name)));
      name = name.slice(0, 99);
    }
    // As for paths, a link target over 100 bytes travels in a PAX record.
    let linkname = "target" in e ? e.target : undefined;
    if (linkname !== undefined && Buffer.byteLength(linkname) > 99) {
      records.push(paxRecord("linkpath", Buffer.from(linkname)));
      linkname = linkname.slice(0, 99);
    }
    if ("xattrs" in e && e.xattrs) for (const [k, v] of Object.entries(e.xattrs)) records.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.from(v)));
    const uid = "uid" in e ? (e.uid ?? 0) : 0;
    const gid = "gid" in e ? (e.gid ?? 0) : 0;
    if (e.type === "file") {
      const data = Buffer.from(e.data);
      out.push(...withPax(name, records, [header(name, "0", { mode: e.mode ?? 0o644, uid, gid, size: data.length }), data, pad(data.length)]));
    } else if (e.type === "dir") {
      out.push(...withPax(name, records, [header(name, "5", { mode: e.mode ?? 0o755, uid, gid, size: 0 })]));
    } else if (e.type === "symlink" || e.type === "link") {
      const mode = e.type === "link" ? e.mode : 0o777;
      out.push(...withPax(name, records, [header(name, TYPEFLAG[e.type], { mode, uid, gid, size: 0, linkname })]));
    } else if (e.type === "char" || e.type === "block") {
      out.push(header(name, TYPEFLAG[e.type], { mode: e.mode ?? 0o666, uid, gid, size: 0, major: e.major, minor: e.minor }));
    } else {
      out.push(header(name, "6", { mode: e.mode ?? 0o644, uid, gid, size: 0 }));
    }
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Chain IDs as containerd computes them: chain(L0) = diffID(L0), chain(Ln) = sha256(chain(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length ? sha(Buffer.from(`${out[out.length - 1]} ${d}`)) : d);
  return out;
}

export interface LayeredImage extends BuiltImage {
  diffIds: string[];
  chainIds: string[];
  layerDigests: string[];
  /** Sum of the compressed layers and config. */
  size: number;
}

/** An OCI layout with one linux/<host arch> manifest of these layers (gzip). */
export async function buildLayeredImage(layers: TarEntry[][], tag = "v1", opts: { wrongDiffIdAt?: number } = {}): Promise<LayeredImage> {
  const layout = await mkdtemp(join(tmpdir(), "kiln-oci-layers-"));
  const blobs = join(layout, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (data: Buffer, mediaType: string) => {
    const digest = sha(data);
    await writeFile(join(blobs, digest.slice(7)), data);
    return { mediaType, digest, size: data.length };
  };
  const diffIds: string[] = [];
  const layerDescs = [];
  for (const entries of layers) {
    const tar = layerTar(entries);
    diffIds.push(sha(tar));
    layerDescs.push(await put(gzipSync(tar, { level: 1 }), "application/vnd.oci.image.layer.v1.tar+gzip"));
  }
  // An image whose config lies about a layer's content (a corrupted or tampered layer).
  if (opts.wrongDiffIdAt !== undefined) diffIds[opts.wrongDiffIdAt] = sha(Buffer.from("not this layer"));
  const architecture = process.arch === "x64" ? "amd64" : process.arch;
  const config = await put(
    Buffer.from(JSON.stringify({ architecture, os: "linux", rootfs: { type: "layers", diff_ids: diffIds }, config: { Cmd: ["/bin/sh"] } })),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = await put(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: layerDescs })),
    "application/vnd.oci.image.manifest.v1+json",
  );
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { "org.opencontainers.image.ref.name": tag } }] }),
  );
  const platform = `linux/${architecture}`;
  return {
    layout,
    tag,
    digest: manifest.digest,
    platforms: { [platform]: { manifest: manifest.digest, config: config.digest, layers: layerDescs.map((l) => l.digest) } },
    diffIds,
    chainIds: chainIds(diffIds),
    layerDigests: layerDescs.map((l) => l.digest),
    size: config.size + layerDescs.reduce((n, l) => n + l.size, 0),
    cleanup: () => rm(layout, { recursive: true, force: true }),
  };
}
