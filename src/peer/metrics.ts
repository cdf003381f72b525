/** Prometheus metrics of a peer, served on its metrics port. */
import http from "node:http";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { survivedErrors } from "../common/process-guard.js";

/**
 * The event-loop lag histogram's sampling interval. prom-client's default, 10 ms, wakes
 * the loop 100 times a second: an idle peer spent 21 ms of CPU each second on it, and 64
 * peers on one machine more than a core. Lag worth alerting on lasts far longer than this.
 */
const EVENT_LOOP_SAMPLE_MS = 200;

/** What the storage gauges read at each scrape. */
export interface StorageStats {
  tasks: number;
  inMemory: number;
  bytes: number;
}

export class PeerMetrics {
  readonly registry = new Registry();
  readonly downloadBytes = new Counter({
    name: "kiln_peer_download_bytes_total",
    help: "Bytes downloaded, by source (p2p or origin)",
    labelNames: ["source"],
    registers: [this.registry],
  });
  readonly uploadBytes = new Counter({ name: "kiln_peer_upload_bytes_total", help: "Bytes served to other peers", registers: [this.registry] });
  readonly pieceFailures = new Counter({
    name: "kiln_peer_piece_failures_total",
    help: "Failed piece fetches, by kind",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly uploadsRejected = new Counter({
    name: "kiln_peer_uploads_rejected_total",
    help: "Uploads refused because all slots were busy",
    registers: [this.registry],
  });
  readonly activeUploads = new Gauge({ name: "kiln_peer_active_uploads", help: "Uploads in progress", registers: [this.registry] });
  /** Read from storage at each scrape (see observeStorage). */
  private storageStats: () => StorageStats = () => ({ tasks: 0, inMemory: 0, bytes: 0 });
  readonly tasks: Gauge = new Gauge({
    name: "kiln_peer_tasks",
    help: "Tasks held on disk, complete or not",
    registers: [this.registry],
    collect: (): void => this.tasks.set(this.storageStats().tasks),
  });
  readonly tasksInMemory: Gauge = new Gauge({
    name: "kiln_peer_tasks_in_memory",
    help: "Tasks whose metadata is in memory (at most --resident-tasks, plus those in use); the others are read back from disk",
    registers: [this.registry],
    collect: (): void => this.tasksInMemory.set(this.storageStats().inMemory),
  });
  readonly storedBytes: Gauge = new Gauge({
    name: "kiln_peer_stored_bytes",
    help: "Bytes of task content on disk",
    registers: [this.registry],
    collect: (): void => this.storedBytes.set(this.storageStats().bytes),
  });
  /** The proxy's P2P answers: `file` when a complete task is read from its stored file, `stream` while it downloads. */
  readonly proxyBytes = new Counter({
    name: "kiln_peer_proxy_bytes_total",
    help: "Content bytes the proxy sent to its clients, by where they were read (file or stream)",
    labelNames: ["from"],
    registers: [this.registry],
  });
  /** Refusals an operator must see: a mirror request refused means containerd fetched from the registry itself, without P2P. */
  readonly proxyRefused = new Counter({
    name: "kiln_peer_proxy_refused_total",
    help:
      "Requests the proxy refused with 403, by way in (mirror: a registry mirror request, whose client then goes to the registry " +
      "itself; proxy: HTTP_PROXY; connect: HTTPS_PROXY) and cause (host: not on --proxy-allow-host; rule: a refuse rule; port: a CONNECT port not allowed)",
    labelNames: ["way", "cause"],
    registers: [this.registry],
  });
  readonly localCopies = new Counter({
    name: "kiln_peer_proxy_local_copies_total",
    help: "Downloads handed to a client on this host as the stored file's path (kiln get's local copy), not as bytes",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // The process's own: in `kiln up` both peers' endpoints show the one count of the process.
    this.registry.registerMetric(survivedErrors);
  }

  /** Counters for the inventory: bytes served to peers, got from the swarm, fetched from origins. */
  async trafficTotals(): Promise<{ uploadedBytes: number; swarmBytes: number; originBytes: number }> {
    const down = (await this.downloadBytes.get()).values;
    const bySource = (s: string) => down.filter((v) => v.labels.source === s).reduce((n, v) => n + v.value, 0);
    const up = (await this.uploadBytes.get()).values.reduce((n, v) => n + v.value, 0);
    return { uploadedBytes: up, swarmBytes: bySource("p2p"), originBytes: bySource("origin") };
  }

  observeStorage(stats: () => StorageStats): void {
    this.storageStats = stats;
  }

  serve(host: string, port: number): Promise<http.Server> {
    const server = http.createServer(async (req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "try /metrics" }));
        return;
      }
      res.writeHead(200, { "content-type": this.registry.contentType }).end(await this.registry.metrics());
    });
    return new Promise((resolve, reject) => server.once("error", reject).listen(port, host, () => resolve(server)));
  }
}
