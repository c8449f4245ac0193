import { DEFAULT_RUNNER_LIMITS } from '@podflow/protocol';
import {
  DEFAULT_PROCESS_LIMITS,
  NODE_ADDRESS_SPACE_HEADROOM_BYTES,
  prlimitArgs,
  PYTHON_ADDRESS_SPACE_HEADROOM_BYTES,
  rlimitsFor,
  stdoutCapBytes,
} from './rlimits';
import { UidPool } from './uid-pool';

const MIB = 1024 * 1024;

describe('rlimitsFor', () => {
  const limits = { ...DEFAULT_PROCESS_LIMITS, memoryLimitBytes: 512 * MIB };

  it('gives Python an address space close to its budget and no V8 flag', () => {
    expect(rlimitsFor('python', limits, true)).toEqual({
      addressSpaceBytes: 512 * MIB + PYTHON_ADDRESS_SPACE_HEADROOM_BYTES,
      maxFileSizeBytes: 100 * MIB,
      maxOpenFiles: 1024,
      maxProcesses: 64,
    });
  });

  it('caps the V8 heap inside the budget and leaves room for V8 reservations', () => {
    for (const language of ['typescript', 'javascript'] as const) {
      expect(rlimitsFor(language, limits, true)).toEqual({
        addressSpaceBytes: 512 * MIB + NODE_ADDRESS_SPACE_HEADROOM_BYTES,
        maxFileSizeBytes: 100 * MIB,
        maxOpenFiles: 1024,
        maxProcesses: 64,
        v8HeapMiB: 384,
      });
    }
    expect(rlimitsFor('javascript', { ...limits, memoryLimitBytes: 8 * MIB }, true).v8HeapMiB).toBe(16);
  });

  it('leaves RLIMIT_NPROC out when it would not be enforced per sandbox', () => {
    expect(rlimitsFor('python', limits, false)).not.toHaveProperty('maxProcesses');
  });
});

describe('prlimitArgs', () => {
  it('sets address space, file size, open files, no core dumps, and processes when given', () => {
    expect(prlimitArgs({ addressSpaceBytes: 1000, maxFileSizeBytes: 2000, maxOpenFiles: 64, maxProcesses: 64 })).toEqual([
      '--as=1000',
      '--fsize=2000',
      '--nofile=64',
      '--core=0',
      '--nproc=64',
    ]);
    expect(prlimitArgs({ addressSpaceBytes: 1000, maxFileSizeBytes: 2000, maxOpenFiles: 8 })).toEqual(['--as=1000', '--fsize=2000', '--nofile=8', '--core=0']);
  });
});

describe('stdoutCapBytes', () => {
  it('sizes the stdout cap above the largest legitimate framed response', () => {
    expect(stdoutCapBytes(DEFAULT_RUNNER_LIMITS)).toBeGreaterThan(DEFAULT_RUNNER_LIMITS.maxOutputBytes * 2);
  });
});

describe('UidPool', () => {
  it('hands out distinct uids in its range and reuses released ones', () => {
    const pool = new UidPool({ first: 5000, count: 3 });
    const uids = [pool.acquire(), pool.acquire(), pool.acquire()];
    expect(new Set(uids).size).toBe(3);
    for (const uid of uids) expect(uid).toBeGreaterThanOrEqual(5000);
    for (const uid of uids) expect(uid).toBeLessThan(5003);
    expect(() => pool.acquire()).toThrow(/all 3 sandbox uids are in use/);
    pool.release(uids[1]);
    expect(pool.acquire()).toBe(uids[1]);
  });

  it('rejects ranges that are not positive or reach 2^31', () => {
    expect(() => new UidPool({ first: 0, count: 10 })).toThrow(/positive integers/);
    expect(() => new UidPool({ first: 2 ** 31 - 5, count: 10 })).toThrow(/below 2\^31/);
  });
});
