/**
 * A TCP relay that adds latency, for kernels without `tc netem` (sch_netem): every
 * chunk is passed on `oneWayMs` after it arrived, in each direction and in order, and
 * a new connection's first bytes wait one extra round trip (its handshake). No slow
 * start, no loss: a round trip added to every exchange, the link's rate left to tbf.
 *
 *   node --import tsx bench/delay-relay.ts <listen host> <listen port> <target host> <target port> <one-way ms>
 */
import net from "node:net";

const [listenHost, listenPort, targetHost, targetPort, oneWay] = process.argv.slice(2);
const delayMs = Number(oneWay);
if (!listenHost || !listenPort || !targetHost || !targetPort || !Number.isFinite(delayMs)) {
  console.error("usage: delay-relay <listen host> <listen port> <target host> <target port> <one-way ms>");
  process.exit(2);
}

/** Passes `from`'s bytes to `to`, each chunk `delay` ms after it came (the first one `first` ms), in order, with backpressure. */
function delayedPipe(from: net.Socket, to: net.Socket, delay: number, first: number): void {
  const queue: { due: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  let firstChunk = true;
  let waiting = false;
  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length && queue[0]!.due <= now) {
      if (!to.write(queue.shift()!.chunk) && !waiting) {
        waiting = true;
        from.pause();
        to.once("drain", () => {
          waiting = false;
          from.resume();
        });
      }
    }
    if (queue.length) timer = setTimeout(flush, Math.max(0, queue[0]!.due - now));
    else if (ended) to.end();
  };
  from.on("data", (chunk: Buffer) => {
    queue.push({ due: performance.now() + (firstChunk ? first : delay), chunk });
    firstChunk = false;
    if (!timer) timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  });
  from.on("end", () => {
    ended = true;
    if (!timer && !queue.length) to.end();
  });
}

// Half-open sockets: one direction's end is passed on after its delayed bytes, never before.
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const upstream = net.connect({ port: Number(targetPort), host: targetHost, allowHalfOpen: true });
  for (const s of [client, upstream]) s.setNoDelay(true);
  // Only a failure cuts the other side at once; a clean end travels through the queue.
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
  client.on("close", (hadError) => hadError && upstream.destroy());
  upstream.on("close", (hadError) => hadError && client.destroy());
  delayedPipe(client, upstream, delayMs, 3 * delayMs);
  delayedPipe(upstream, client, delayMs, delayMs);
});
server.listen(Number(listenPort), listenHost, () => console.log(JSON.stringify({ event: "ready", port: Number(listenPort) })));
process.on("SIGTERM", () => process.exit(0));
