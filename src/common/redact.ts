/** A URL fit for logs and error messages: no query (signatures), no user info. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = u.search ? "?…" : "";
    return u.toString();
  } catch {
    return "<invalid url>";
  }
}
