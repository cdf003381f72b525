/** Which request headers of a client may reach an origin. */

/** Request headers that describe the hop, not the resource (Range: kiln asks for its own). */
const HOP_BY_HOP = new Set(["connection", "proxy-connection", "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "range"]);

/** Whether a client's request header (lower-case name) may reach the origin: not hop-by-hop, not kiln's or Dragonfly's own. */
export function isForwardable(key: string): boolean {
  return !HOP_BY_HOP.has(key) && !key.startsWith("x-dragonfly-") && !key.startsWith("x-kiln-");
}
