import { createHash } from "node:crypto";

/** Piece and content digests are written `sha256:<hex>`, as in OCI. */
export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}
