/**
 * The `started` report of one execution, sent only if the execution is still running after
 * `delayMs`. Most Code nodes are short: their start and their result then reach the coordinator
 * as one `finished` message (`startReported: false`) instead of two queue messages and two
 * transitions. A long execution still shows `running` within `delayMs` of its start.
 *
 * `started` is advisory (a result is accepted whether or not its start was recorded), so a report
 * that fails is logged and dropped, never allowed to fail the execution.
 */
/** STARTED_REPORT_DELAY_MS's default: a node that takes longer shows `running` this late at most. */
export const DEFAULT_STARTED_REPORT_DELAY_MS = 100;

export class StartReport {
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;

  constructor(
    send: () => Promise<void>,
    delayMs: number,
    onError: (error: unknown) => void,
  ) {
    const fire = () => {
      this.timer = undefined;
      this.sending = send().catch(onError);
    };
    if (delayMs <= 0) fire();
    else this.timer = setTimeout(fire, delayMs);
  }

  /**
   * Stops the timer; true when `started` was sent (or attempted). Waits for a report in flight, so
   * `started` is always added to the queue before the result that follows it.
   */
  async settle(): Promise<boolean> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      return false;
    }
    await this.sending;
    return true;
  }
}
