/** Runs `close` once on SIGINT/SIGTERM, then exits. */
export function stopOnSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = async () => {
    if (closing) return process.exit(1);
    closing = true;
    try {
      await close();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
