import type { FinishedReport } from '@podflow/protocol';

interface Waiting {
  report: FinishedReport;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Sends finished results with at most one message in flight: a result that is ready while the
 * previous message is being written waits for it and then goes out together with every other
 * result that gathered meanwhile (up to `maxPerMessage`). An idle worker sends each result at
 * once, so this adds no latency; a busy one sends one message per batch instead of one per
 * execution. `report` resolves once the result is durable on the queue, and rejects if its
 * message could not be written (the caller's job then fails and BullMQ retries it).
 */
export class ResultBatcher {
  private readonly waiting: Waiting[] = [];
  private inFlight = false;

  constructor(
    private readonly send: (reports: FinishedReport[]) => Promise<void>,
    private readonly maxPerMessage: number,
  ) {}

  report(report: FinishedReport): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ report, resolve, reject });
      if (!this.inFlight) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.inFlight = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, this.maxPerMessage);
        try {
          await this.send(batch.map((w) => w.report));
          for (const w of batch) w.resolve();
        } catch (error) {
          for (const w of batch) w.reject(error);
        }
      }
    } finally {
      this.inFlight = false;
    }
  }
}
