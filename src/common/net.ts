import os from "node:os";
import { isIP } from "node:net";

/** The address other machines most likely reach this one at: the first non-loopback IPv4. */
export function defaultAdvertiseIp(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

/** `localhost`, 127.0.0.0/8, ::1 (bracketed or IPv4-mapped too). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/^::ffff:/, "");
  return h === "localhost" || h === "::1" || (isIP(h) === 4 && h.startsWith("127."));
}

/**
 * A registry host (`registry.example.com:5000`, `docker.io`) or URL → the host name
 * clients use and the URL to reach it at: HTTPS unless the host is loopback or
 * `insecure` says plain HTTP.
 */
export function registryServer(registry: string, insecure = false): { host: string; server: string } {
  if (/^https?:\/\//i.test(registry)) {
    const u = new URL(registry);
    return { host: u.host, server: u.origin };
  }
  if (registry === "docker.io") return { host: "docker.io", server: "https://registry-1.docker.io" };
  const hostname = registry.replace(/:\d+$/, "");
  return { host: registry, server: `${insecure || isLoopbackHost(hostname) ? "http" : "https"}://${registry}` };
}
