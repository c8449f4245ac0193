/**
 * Where a run's terminal outcome goes (kept in the run's hash, field `notify`): reply targets
 * of queue submitters and webhook URLs. A run may collect more than one: a second submission
 * with the same idempotency key names its own target and gets the same run's completion.
 */
export type NotifyTarget =
  | { kind: 'reply'; replyTo: string; correlationId?: string; submissionId?: string }
  | { kind: 'webhook'; url: string; correlationId?: string };

/** Targets one run keeps at most: each is a delivery when it finishes, so a key reused without end must not grow it. */
export const MAX_NOTIFY_TARGETS = 16;

/** A target's identity: two submissions naming the same target are delivered once. */
export function targetIdentity(target: NotifyTarget): string {
  return target.kind === 'reply' ? `reply\n${target.replyTo}\n${target.correlationId ?? ''}` : `webhook\n${target.url}\n${target.correlationId ?? ''}`;
}

/** Targets as the run's `notify` field keeps them: [identity, target] pairs, duplicates dropped, at most MAX_NOTIFY_TARGETS. */
export function storedTargets(targets: readonly NotifyTarget[]): Array<[string, NotifyTarget]> {
  const pairs = new Map<string, NotifyTarget>();
  for (const target of targets) if (pairs.size < MAX_NOTIFY_TARGETS && !pairs.has(targetIdentity(target))) pairs.set(targetIdentity(target), target);
  return [...pairs];
}

/** Targets as stored; anything unreadable counts as none (a corrupt field must not block the outbox). */
export function parseTargets(json: string | null | undefined): NotifyTarget[] {
  if (!json) return [];
  try {
    const parsed = JSON.parse(json) as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((pair) => (Array.isArray(pair) && typeof pair[1] === 'object' && pair[1] !== null ? [pair[1] as NotifyTarget] : []));
  } catch {
    return [];
  }
}
