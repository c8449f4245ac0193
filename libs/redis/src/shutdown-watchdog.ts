/**
 * Closing a coordinator or worker needs Redis (handing jobs back, flushing results, closing queue
 * connections). When Redis is gone too (an uninstall deletes it with them), closing hangs until
 * the kubelet's SIGKILL at the end of the grace period. The watchdog, started when the process
 * begins to close, ends it sooner: only when Redis has not answered for `failuresToExit`
 * consecutive checks. While Redis answers, a long but legitimate drain (running executions,
 * requests waiting for their run) goes on. Exiting loses nothing: accepted work lives in Redis,
 * and jobs this process did not finish are re-delivered when their locks expire.
 */
export interface ShutdownWatchdogOptions {
  /** Resolves when Redis answers; rejects or times out otherwise. */
  ping: () => Promise<unknown>;
  /** Called once, when Redis stayed unreachable (the process exits there). */
  onStuck: (checks: number) => void;
  intervalMs?: number;
  pingTimeoutMs?: number;
  failuresToExit?: number;
}

export function startShutdownWatchdog(options: ShutdownWatchdogOptions): () => void {
  const { ping, onStuck, intervalMs = 5_000, pingTimeoutMs = 2_000, failuresToExit = 2 } = options;
  let failures = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const check = async () => {
    const answered = await Promise.race([
      ping().then(() => true, () => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), pingTimeoutMs).unref()),
    ]);
    if (stopped) return;
    failures = answered ? 0 : failures + 1;
    if (failures >= failuresToExit) {
      stopped = true;
      onStuck(failures);
      return;
    }
    timer = setTimeout(() => void check(), intervalMs).unref();
  };
  timer = setTimeout(() => void check(), intervalMs).unref();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
