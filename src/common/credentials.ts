/** What counts as a credential in a request a user hands kiln: kept out of storage, answers and logs. */

/** Header names that carry credentials: auth schemes, cookies, and the usual token/key/secret spellings. */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie)$|token|secret|passw|api-?key|credential|session|signature/i;

export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADER.test(name);
}

/** Splits headers into what may be stored and shown, and the credentials. */
export function splitCredentialHeaders(headers: Record<string, string>): { plain: Record<string, string>; credentials: Record<string, string> } {
  const plain: Record<string, string> = {};
  const credentials: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) (isCredentialHeader(k) ? credentials : plain)[k] = v;
  return { plain, credentials };
}

/** `http://alice:pw@host/x` → `{ url: "http://host/x", userInfo: "alice:pw" }`; a URL without user-info is returned as it is. */
export function splitUserInfo(url: string): { url: string; userInfo?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  if (!u.username && !u.password) return { url };
  const userInfo = `${u.username}${u.password ? `:${u.password}` : ""}`;
  // Rebuilt by hand: URL.toString() would also normalise the rest of the URL, and the task ID hashes it as written.
  return { url: url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, "$1"), userInfo };
}

/** Puts user-info (as `splitUserInfo` returned it) back into a URL. */
export function withUserInfo(url: string, userInfo: string | undefined): string {
  if (!userInfo) return url;
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)/i, `$1${userInfo}@`);
}
