/** A process's open file descriptors (Linux /proc), sorted into what a leak check needs to tell apart. */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

export interface FdCensus {
  total: number;
  /** Connections accepted on `listenPort` (its listening socket excluded). */
  accepted: number;
  /** Outgoing TCP connections to one of `remotePorts` (keep-alive connections a client pool may hold on to). */
  outgoing: number;
  /** Files under `dir`. */
  files: number;
  /** Every descriptor's target, for a failure message. */
  targets: string[];
}

const TCP_LISTEN = "0A";

interface TcpSocket {
  localPort: number;
  remotePort: number;
  state: string;
}

/** inode → socket, from /proc/<pid>/net/tcp and tcp6 (the process's network namespace). */
function tcpSockets(pid: number): Map<string, TcpSocket> {
  const sockets = new Map<string, TcpSocket>();
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = (addr: string) => parseInt(addr.split(":")[1]!, 16);
      sockets.set(f[9]!, { localPort: port(f[1]!), remotePort: port(f[2]!), state: f[3]! });
    }
  }
  return sockets;
}

export function fdCensus(pid: number, opts: { listenPort: number; remotePorts: number[]; dir: string }): FdCensus {
  const sockets = tcpSockets(pid);
  const census: FdCensus = { total: 0, accepted: 0, outgoing: 0, files: 0, targets: [] };
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    census.total++;
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    const tcp = inode ? sockets.get(inode) : undefined;
    if (tcp) target = `tcp ${tcp.localPort} → ${tcp.remotePort} (state ${tcp.state})`;
    census.targets.push(target);
    if (tcp?.localPort === opts.listenPort && tcp.state !== TCP_LISTEN) census.accepted++;
    else if (tcp && opts.remotePorts.includes(tcp.remotePort)) census.outgoing++;
    else if (target.startsWith(`${opts.dir}/`)) census.files++;
  }
  return census;
}
