/** "name (ip:port)": hosts that share a hostname told apart (CLI, logs and the console alike; no Node needed). */
export function hostLabel(h: { hostname: string; ip: string; port?: number | null }): string {
  return `${h.hostname || "—"} (${hostAddress(h)})`;
}

/** "ip:port" ("[v6]:port"), or the IP alone when the port is not known. */
export function hostAddress(h: { ip: string; port?: number | null }): string {
  if (!h.port) return h.ip || "—";
  return h.ip.includes(":") ? `[${h.ip}]:${h.port}` : `${h.ip}:${h.port}`;
}
