import os from "node:os";

/** The address other machines most likely reach this one at: the first non-loopback IPv4. */
export function defaultAdvertiseIp(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
