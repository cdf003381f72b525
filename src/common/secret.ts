import { createHmac, timingSafeEqual } from "node:crypto";

/** Compares a presented secret with the expected one in constant time. */
export function sameSecret(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The upload credential of a cluster with this secret: what its peers present to each
 * other's upload ports. Derived (never the secret itself, which also admits to the
 * scheduler API), and the same at every scheduler that holds the secret.
 */
export function uploadCredentialFor(clusterSecret: string): string {
  return createHmac("sha256", clusterSecret).update("kiln upload credential v1").digest("base64url");
}
