/** `kiln up`: the all-in-one cluster in one process (scheduler, seed peer, peer, manager). */
import http from "node:http";
import { join } from "node:path";
import type { Command } from "commander";
import { PORTS } from "../common/defaults.js";
import { createLogger } from "../common/logger.js";
import { startScheduler } from "../scheduler/index.js";
import { defaultPeerConfig, startPeer } from "../peer/index.js";
import { parsePort } from "./options.js";
import { stopOnSignal } from "./signals.js";

interface UpFlags {
  dataDir: string;
  host: string;
  advertiseIp?: string;
  schedulerPort: number;
  managerPort: number;
}

export function registerUpCommand(program: Command): void {
  program
    .command("up")
    .description("run the all-in-one cluster: manager, scheduler, one seed peer and one peer")
    .option("--data-dir <dir>", "base directory for all state", ".kiln")
    .option("--host <addr>", "address to listen on", "0.0.0.0")
    .option("--advertise-ip <ip>", "IP other peers reach this node at")
    .option("--scheduler-port <port>", "scheduler port", parsePort, PORTS.scheduler)
    .option("--manager-port <port>", "manager port", parsePort, PORTS.manager)
    .action(async (f: UpFlags) => {
      const scheduler = await startScheduler({ host: f.host, port: f.schedulerPort });
      const base = defaultPeerConfig();
      const common = {
        schedulerUrl: scheduler.url,
        listenHost: f.host,
        advertiseIp: f.advertiseIp ?? base.advertiseIp,
      };
      const seed = await startPeer(
        defaultPeerConfig({ ...common, seed: true, dataDir: join(f.dataDir, "seed-peer"), uploadPort: PORTS.seedUpload, proxyPort: null, metricsPort: PORTS.seedMetrics, hostname: `${base.hostname}-seed` }),
      );
      const peer = await startPeer(defaultPeerConfig({ ...common, dataDir: join(f.dataDir, "peer") }));
      const manager = await startManagerStub(f.host, f.managerPort);
      const rows = [
        ["manager", `http://127.0.0.1:${f.managerPort}`, "placeholder until the manager lands"],
        ["scheduler", scheduler.url, "hosts, tasks, parent selection"],
        ["seed peer", `upload :${seed.uploadPort}, metrics :${seed.metricsPort}`, join(f.dataDir, "seed-peer")],
        ["peer", `upload :${peer.uploadPort}, proxy :${peer.proxyPort}, metrics :${peer.metricsPort}`, join(f.dataDir, "peer")],
      ];
      process.stderr.write(
        "\nkiln is up (all-in-one)\n\n" +
          rows.map(([a, b, c]) => `  ${a!.padEnd(10)} ${b!.padEnd(52)} ${c}`).join("\n") +
          `\n\n  try: kiln get <url> -O <file>     (through the peer proxy at http://127.0.0.1:${peer.proxyPort})\n\n`,
      );
      stopOnSignal(async () => {
        await peer.close();
        await seed.close();
        await scheduler.close();
        manager.close();
      });
    });
}

/** Answers on the manager port until the manager component exists. */
function startManagerStub(host: string, port: number): Promise<http.Server> {
  const log = createLogger("manager");
  const server = http.createServer((_req, res) => {
    res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ message: "the manager is not part of this build yet" }));
  });
  return new Promise((resolve, reject) =>
    server.once("error", reject).listen(port, host, () => {
      log.info({ event: "ready", port }, "manager placeholder listening");
      resolve(server);
    }),
  );
}
