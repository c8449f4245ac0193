import { lookup as dnsLookup } from 'node:dns/promises';

/** Who a lookup is for, and when its caller stops waiting. */
export interface LookupContext {
  /** The tenant whose webhook names this is: one tenant's lookups take at most one slot. */
  owner?: string;
  signal?: AbortSignal;
}

/** `dns.promises.lookup` with `{ all: true }`, injectable so tests need no DNS. */
export type WebhookLookup = (hostname: string, options: { all: true }, context?: LookupContext) => Promise<readonly { address: string; family: number }[]>;

type Answer = readonly { address: string; family: number }[];
type Resolve = (hostname: string, options: { all: true }) => Promise<Answer>;

export interface LookupSlotsOptions {
  /** Lookups running at once: getaddrinfo holds one of libuv's 4 pool threads until the resolver answers. */
  slots: number;
  /** Of those, the most one owner's lookups may hold (a lookup whose caller gave up still holds its slot). */
  perOwner: number;
  /** How long a caller waits, in the queue and for the answer together. */
  timeoutMs: number;
  /** How long a name that timed out or failed "for now" is answered with that failure, taking no slot. */
  failureTtlMs: number;
  resolve?: Resolve;
  now?: () => number;
}

interface Waiter {
  owner: string;
  start: () => void;
}

/** A lookup that did not answer in time: temporary, as a resolver's own timeout is. */
function timedOut(hostname: string, ms: number): Error {
  return Object.assign(new Error(`no DNS answer for ${hostname} within ${ms} ms`), { code: 'LOOKUP_TIMEOUT' });
}

/** getaddrinfo errors that say "not now" rather than "no such name". */
export const TEMPORARY_DNS_CODES: ReadonlySet<string> = new Set(['EAI_AGAIN', 'ETIMEOUT', 'ESERVFAIL', 'ECONNREFUSED', 'LOOKUP_TIMEOUT']);

/** Names remembered as failing at most; the oldest is forgotten first. */
const MAX_REMEMBERED_FAILURES = 10_000;

/**
 * DNS lookups of webhook hosts, bounded: `slots` at once, at most `perOwner` of them one owner's,
 * each caller waiting `timeoutMs` at most from the moment it asks (queue included), and leaving
 * the queue when it gives up or its signal aborts. A name whose lookup took `timeoutMs` from its
 * own start, or failed "for now", fails the same way for `failureTtlMs` without a lookup. Before, one queue with no time
 * limit served every tenant: eight webhook names whose DNS never answers, from one tenant, held
 * another tenant's POST /v1/runs 40 s and failed its webhook deliveries (a red-team finding).
 */
export class LookupSlots {
  private running = 0;
  private readonly runningBy = new Map<string, number>();
  private readonly waiting: Waiter[] = [];
  private readonly failures = new Map<string, { until: number; error: Error }>();
  private readonly resolve: Resolve;
  private readonly now: () => number;

  constructor(private readonly options: LookupSlotsOptions) {
    this.resolve = options.resolve ?? ((hostname, lookupOptions) => dnsLookup(hostname, lookupOptions));
    this.now = options.now ?? Date.now;
  }

  readonly lookup: WebhookLookup = (hostname, lookupOptions, context = {}) => {
    const remembered = this.failures.get(hostname);
    if (remembered && remembered.until > this.now()) return Promise.reject(remembered.error);
    if (remembered) this.failures.delete(hostname);
    const owner = context.owner ?? '';
    return new Promise<Answer>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, answer?: Answer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        context.signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve(answer!);
      };
      const leave = (error: Error) => {
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        finish(error);
      };
      const timer = setTimeout(() => leave(timedOut(hostname, this.options.timeoutMs)), this.options.timeoutMs);
      const onAbort = () => leave(context.signal!.reason instanceof Error ? context.signal!.reason : new Error('the lookup was abandoned'));
      const waiter: Waiter = {
        owner,
        start: () => {
          this.running++;
          this.runningBy.set(owner, (this.runningBy.get(owner) ?? 0) + 1);
          // Only the resolver's own slowness says something about the name: a lookup that started
          // late in its caller's wait (behind the same tenant's slow names) is not held against it,
          // or one tenant could make a shared name such as a chat service's fail for everyone.
          const slow = setTimeout(() => this.remember(hostname, timedOut(hostname, this.options.timeoutMs)), this.options.timeoutMs);
          this.resolve(hostname, lookupOptions)
            .then(
              (answer) => finish(undefined, answer),
              (error: unknown) => {
                const failure = error instanceof Error ? error : new Error(String(error));
                if (TEMPORARY_DNS_CODES.has(String((failure as NodeJS.ErrnoException).code))) this.remember(hostname, failure);
                finish(failure);
              },
            )
            .finally(() => {
              clearTimeout(slow);
              // The slot is held until getaddrinfo returns, whether or not anyone still waits.
              this.running--;
              const left = (this.runningBy.get(owner) ?? 1) - 1;
              if (left > 0) this.runningBy.set(owner, left);
              else this.runningBy.delete(owner);
              this.pump();
            });
        },
      };
      if (context.signal?.aborted) return onAbort();
      context.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      this.pump();
    });
  };

  /** Starts the first waiters, in order, whose owner is under its share, while slots are free. */
  private pump(): void {
    for (let at = 0; at < this.waiting.length && this.running < this.options.slots; ) {
      const waiter = this.waiting[at]!;
      if ((this.runningBy.get(waiter.owner) ?? 0) >= this.options.perOwner) {
        at++;
        continue;
      }
      this.waiting.splice(at, 1);
      waiter.start();
    }
  }

  private remember(hostname: string, error: Error): void {
    if (this.failures.size >= MAX_REMEMBERED_FAILURES) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(hostname, { until: this.now() + this.options.failureTtlMs, error });
  }
}

/** The coordinator's webhook lookups: 2 slots (half of libuv's pool), 1 per tenant, 5 s per caller, failures remembered 30 s. */
export const webhookLookups = new LookupSlots({ slots: 2, perOwner: 1, timeoutMs: 5_000, failureTtlMs: 30_000 });
