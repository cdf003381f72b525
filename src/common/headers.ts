/** HTTP header rules kiln shares: which request headers of a client may reach an origin, and how a message becomes a header value. */

/** Request headers that describe the hop, not the resource (Range: kiln asks for its own). */
const HOP_BY_HOP = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "range",
]);

/** Whether a client's request header (lower-case name) may reach the origin: not hop-by-hop, not kiln's or Dragonfly's own. */
export function isForwardable(key: string): boolean {
  return !HOP_BY_HOP.has(key) && !key.startsWith("x-dragonfly-") && !key.startsWith("x-kiln-");
}

/**
 * A message fit for a header or trailer value. Messages can quote client input,
 * and encodeURIComponent throws on a lone UTF-16 surrogate: those become U+FFFD.
 */
export function headerEncode(message: string): string {
  return encodeURIComponent(message.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD"));
}

/** The message `headerEncode` made; a value that is not valid percent-encoding is returned as it is. */
export function headerDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** A `Name: value` line (curl's -H, the console's header box) as its trimmed name and value; undefined without a colon or a name. */
export function splitHeaderLine(line: string): { name: string; value: string } | undefined {
  const i = line.indexOf(":");
  const name = line.slice(0, i).trim();
  return i <= 0 || !name ? undefined : { name, value: line.slice(i + 1).trim() };
}
