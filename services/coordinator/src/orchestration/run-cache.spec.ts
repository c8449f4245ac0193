import type { NodeRecord } from '@podflow/workflow';
import { RunCache, approximateBytes } from './run-cache';

const record = (status: NodeRecord['status'], output: object = { v: 1 }): NodeRecord => ({ status, attempts: 1, timings: {}, waiting: 0, fired: 1, output }) as unknown as NodeRecord;

describe('RunCache', () => {
  it('keeps succeeded node records only: anything else may still change', () => {
    const cache = new RunCache(1 << 20);
    const done = record('succeeded');
    cache.rememberNode('r1', 'a', done);
    for (const status of ['pending', 'queued', 'running', 'failed', 'skipped', 'canceled'] as const) cache.rememberNode('r1', status, record(status));
    expect(cache.node('r1', 'a')).toEqual(done);
    for (const status of ['pending', 'queued', 'running', 'failed', 'skipped', 'canceled']) expect(cache.node('r1', status)).toBeUndefined();
    expect(cache.node('r2', 'a')).toBeUndefined();
  });

  it('keeps a succeeded node with outgoing edges left to resolve only once they are all resolved: its record changes page after page', () => {
    const cache = new RunCache(1 << 20);
    cache.rememberNode('r1', 'root', { ...record('succeeded'), edgesResolved: 250 });
    expect(cache.node('r1', 'root')).toBeUndefined();
    cache.rememberNode('r1', 'root', record('succeeded'));
    expect(cache.node('r1', 'root')).toEqual(record('succeeded'));
  });

  it('keeps a record without its logs, which its byte budget does not count', () => {
    const cache = new RunCache(1 << 20);
    const logged = { ...record('succeeded'), logs: { stdout: 'x'.repeat(1 << 21), stderr: '', truncated: false } } as NodeRecord;
    cache.rememberNode('r1', 'a', logged);
    expect(cache.node('r1', 'a')).toEqual(record('succeeded'));
  });

  it('keeps inputs per run', () => {
    const cache = new RunCache(1 << 20);
    cache.rememberInputs('r1', { n: 1 }, 7);
    expect(cache.inputs('r1')).toEqual({ n: 1 });
    expect(cache.inputs('r2')).toBeUndefined();
  });

  it('stays within its byte budget, least recently used out first', () => {
    const big = 'x'.repeat(400);
    const size = approximateBytes(record('succeeded', { big }));
    const cache = new RunCache(size * 2 + 10);
    cache.rememberNode('r', 'a', record('succeeded', { big }));
    cache.rememberNode('r', 'b', record('succeeded', { big }));
    expect(cache.node('r', 'a')).toBeDefined(); // a is now the most recently used
    cache.rememberNode('r', 'c', record('succeeded', { big }));
    expect(cache.node('r', 'b')).toBeUndefined();
    expect(cache.node('r', 'a')).toBeDefined();
    expect(cache.node('r', 'c')).toBeDefined();
  });

  it('does not keep an entry larger than the whole budget, and keeps nothing with a budget of 0', () => {
    const small = new RunCache(50);
    small.rememberNode('r', 'a', record('succeeded', { big: 'x'.repeat(100) }));
    expect(small.node('r', 'a')).toBeUndefined();
    const off = new RunCache(0);
    off.rememberNode('r', 'a', record('succeeded'));
    off.rememberInputs('r', {}, 2);
    expect(off.node('r', 'a')).toBeUndefined();
    expect(off.inputs('r')).toBeUndefined();
  });

  it('counts an output kept by reference at its stored size', () => {
    const byRef = { ...record('succeeded', { x: 1 }), outputRef: { key: 'k', size: 10_000, sha256: 'f'.repeat(64) } } as NodeRecord;
    expect(approximateBytes(byRef)).toBeGreaterThan(10_000);
  });

  it('keeps run and node ids apart whatever characters they contain', () => {
    const cache = new RunCache(1 << 20);
    const one = record('succeeded', { one: 1 });
    cache.rememberNode('a', 'b:c', one);
    expect(cache.node('a:b', 'c')).toBeUndefined();
    expect(cache.node('a', 'b:c')).toEqual(one);
  });
});
