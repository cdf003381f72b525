/**
 * A three-layer test image with everything a layer can carry: modes (setuid, sticky),
 * owners, symlinks (relative and absolute), hard links, a device node, a FIFO, xattrs,
 * and in upper layers a whiteout (a deleted file, a deleted symlink) and an opaque
 * directory, plus files replaced and directories whose mode changes.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { TarEntry } from "./layer-tar.js";

/** Debian's busybox-static, so that runc can run a container from the image. */
export const BUSYBOX = "/bin/busybox";

export function richLayers(): TarEntry[][] {
  const big = randomBytes(300 * 1024);
  const busybox = readFileSync(BUSYBOX);
  return [
    [
      { type: "dir", path: "etc", mode: 0o755 },
      { type: "file", path: "etc/passwd", data: "root:x:0:0:root:/root:/bin/sh\n", mode: 0o644 },
      { type: "symlink", path: "etc/abs-link", target: "/etc/passwd" },
      { type: "dir", path: "bin", mode: 0o755 },
      { type: "file", path: "bin/busybox", data: busybox, mode: 0o755 },
      { type: "symlink", path: "bin/sh", target: "busybox" },
      { type: "dir", path: "usr", mode: 0o755 },
      { type: "dir", path: "usr/bin", mode: 0o755 },
      { type: "file", path: "usr/bin/tool", data: big, mode: 0o4755, xattrs: { "user.kiln.test": Buffer.from([0, 1, 2, 255]) } },
      { type: "link", path: "usr/bin/tool-hard", target: "usr/bin/tool", mode: 0o4755 },
      { type: "symlink", path: "usr/bin/tool-link", target: "tool" },
      { type: "dir", path: "data", mode: 0o750, uid: 1000, gid: 1000 },
      { type: "file", path: "data/secret", data: "s3cret\n", mode: 0o600, uid: 1000, gid: 1000 },
      { type: "file", path: "data/deleted", data: "gone in layer 2\n" },
      { type: "dir", path: "tmp", mode: 0o1777 },
      { type: "dir", path: "opq", mode: 0o755 },
      { type: "file", path: "opq/old1", data: "old1" },
      { type: "dir", path: "opq/sub", mode: 0o755 },
      { type: "file", path: "opq/sub/x", data: "x" },
      { type: "dir", path: "dev", mode: 0o755 },
      { type: "char", path: "dev/kiln-null", major: 1, minor: 3, mode: 0o666 },
      { type: "fifo", path: "dev/kiln-fifo", mode: 0o620 },
      { type: "file", path: `deep/${"d".repeat(60)}/${"e".repeat(60)}/long-name.txt`, data: "a path over 100 bytes (PAX path record)" },
    ],
    [
      { type: "whiteout", path: "data/deleted" },
      { type: "opaque", dir: "opq" },
      { type: "dir", path: "opq", mode: 0o755 },
      { type: "file", path: "opq/new", data: "new" },
      { type: "file", path: "etc/passwd", data: "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n", mode: 0o644 },
      { type: "dir", path: "www", mode: 0o750, uid: 33, gid: 33 },
      { type: "file", path: "www/index.html", data: "<h1>kiln</h1>\n", mode: 0o640, uid: 33, gid: 33 },
      { type: "link", path: "www/index-copy.html", target: "www/index.html", mode: 0o640, uid: 33, gid: 33 },
    ],
    [
      { type: "whiteout", path: "etc/abs-link" },
      { type: "dir", path: "etc", mode: 0o700 },
      { type: "file", path: "usr/bin/tool-link", data: "now a file\n", mode: 0o755 },
      { type: "file", path: "top.txt", data: "top layer\n" },
    ],
  ];
}
