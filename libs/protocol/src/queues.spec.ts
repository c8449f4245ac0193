import { DEFAULT_KEY_PREFIX, QUEUE_NAMES, canceledSetKey, keyPrefixProblem, queuePrefix, resultJobId, runEventsChannel } from './index';

/** The part of a key Redis Cluster hashes: the first `{...}` with something inside, else the whole key. */
function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('key layout for Redis Cluster', () => {
  it('gives each queue a hash tag of its own, so one queue shares a slot and queues spread', () => {
    // BullMQ builds keys as `<prefix>:<queue name>:<suffix>`.
    const keysOf = (name: string) => ['wait', 'active', 'meta', 'events', 'id'].map((suffix) => `${queuePrefix(DEFAULT_KEY_PREFIX, name)}:${name}:${suffix}`);
    expect(keysOf(QUEUE_NAMES.exec)[0]).toBe('podflow:{q:exec}:exec:wait');
    for (const name of Object.values(QUEUE_NAMES)) expect(new Set(keysOf(name).map(hashTagOf))).toEqual(new Set([`q:${name}`]));
    expect(new Set(Object.values(QUEUE_NAMES).map((name) => hashTagOf(keysOf(name)[0]!))).size).toBe(Object.keys(QUEUE_NAMES).length);
  });

  it('tags the canceled-executions set on its own; channels need no tag', () => {
    expect(canceledSetKey('podflow')).toBe('podflow:{canceled}:executions');
    expect(hashTagOf(canceledSetKey('podflow'))).toBe('canceled');
    expect(runEventsChannel('podflow', 'r-1')).toBe('podflow:run-events:r-1');
  });

  it('refuses a key prefix with braces or white space, naming QUEUE_PREFIX and a fix', () => {
    expect(keyPrefixProblem(DEFAULT_KEY_PREFIX)).toBeUndefined();
    expect(keyPrefixProblem('team-a:podflow')).toBeUndefined();
    expect(keyPrefixProblem('{podflow}')).toMatch(/^QUEUE_PREFIX "\{podflow\}" contains "\{" or "\}".*use e\.g\. "podflow"$/);
    expect(keyPrefixProblem('a}b')).toMatch(/use e\.g\. "ab"/);
    expect(keyPrefixProblem('pod flow')).toMatch(/white space/);
    expect(keyPrefixProblem('')).toMatch(/must not be empty/);
  });
});

describe('resultJobId of a finished_batch', () => {
  const batch = (...ids: string[]) => ({ kind: 'finished_batch' as const, results: ids.map((executionId) => ({ result: { executionId } as never })) });

  it('names every result, so two batches that share their first result never share an id', () => {
    expect(resultJobId(batch('r.a.1', 'r.b.1'))).toBe('finished.r.a.1+r.b.1');
    expect(resultJobId(batch('r.a.1', 'r.b.1'))).not.toBe(resultJobId(batch('r.a.1', 'r.c.1')));
  });
});
