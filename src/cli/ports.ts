/** Start-up checks that turn a taken port into one clear line, before anything is created. */
import net from "node:net";

export interface PortClaim {
  port: number;
  /** The flag that sets this port, named in the error. */
  flag: string;
}

export class StartupError extends Error {}

/** Binds and releases each port (0 = any free port, not checked); throws on the first that cannot be bound. */
export async function assertPortsFree(host: string, claims: PortClaim[]): Promise<void> {
  const seen = new Map<number, string>();
  for (const { port, flag } of claims) {
    if (port === 0) continue;
    const twin = seen.get(port);
    if (twin) throw new StartupError(`port ${port} is given twice (${twin} and ${flag}); give each its own`);
    seen.set(port, flag);
    const error = await tryBind(host, port);
    if (error) throw new StartupError(`${describeBindError(error, host, port)}; use ${flag} to choose another`);
  }
}

function tryBind(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** One line for a failed listen, whoever raised it. */
export function describeBindError(err: NodeJS.ErrnoException, host?: string, port?: number): string {
  const where = port !== undefined ? `port ${port}${host ? ` on ${host}` : ""}` : "the port";
  switch (err.code) {
    case "EADDRINUSE":
      return `${where} is in use by another process`;
    case "EACCES":
      return `${where} needs privileges this user does not have`;
    case "EADDRNOTAVAIL":
      return `${host ?? "the address"} is not an address of this machine`;
    default:
      return `cannot listen on ${where}: ${err.message}`;
  }
}
