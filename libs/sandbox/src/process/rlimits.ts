import type { Language, RunnerLimits } from '@podflow/protocol';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Per-execution resource limits of the process driver (the kernel-enforced ones). */
export interface ProcessLimits {
  /** Memory budget of one execution, in bytes. */
  memoryLimitBytes: number;
  /** RLIMIT_NPROC: processes and threads of one sandbox (enforced only under a dedicated host uid). */
  maxProcesses: number;
  /** RLIMIT_FSIZE: the largest single file the code may write, in bytes. */
  maxFileSizeBytes: number;
  /** Size of the private `/tmp` tmpfs under bubblewrap, in bytes (it is RAM-backed). */
  tmpSizeBytes: number;
  /** RLIMIT_NOFILE per process: the host's open-file table is shared by everyone. */
  maxOpenFiles: number;
}

export const DEFAULT_PROCESS_LIMITS: ProcessLimits = {
  memoryLimitBytes: 512 * MIB,
  maxProcesses: 64,
  maxFileSizeBytes: 100 * MIB,
  tmpSizeBytes: 64 * MIB,
  maxOpenFiles: 1024,
};

/**
 * Address space granted to Node on top of the memory budget. Measured with Node 20.20 on x86-64
 * (budgets 64 MiB to 2 GiB): an idle `node` maps ~730 MiB of virtual memory (code range, heap
 * reservations, ICU); with 640 MiB of headroom a 64 MiB budget cannot even reserve V8's code
 * range, from 768 MiB on the heap reaches its `--max-old-space-size` and dies with V8's own "heap
 * out of memory". 1 GiB keeps a margin for other Node builds; the price is that off-heap memory
 * (Buffers) can exceed the budget by ~350 MiB before allocations fail.
 */
export const NODE_ADDRESS_SPACE_HEADROOM_BYTES = 1 * GIB;

/**
 * Headroom for Python: its idle virtual size is ~15 MiB, so RLIMIT_AS close to the budget makes a
 * large allocation raise `MemoryError` (a clean, reportable failure) instead of being OOM-killed.
 */
export const PYTHON_ADDRESS_SPACE_HEADROOM_BYTES = 64 * MIB;

/** Share of the memory budget given to V8's old space; the rest is young space, code and buffers. */
export const NODE_HEAP_SHARE = 0.75;

/** The rlimits and interpreter flags one execution runs with. */
export interface ExecutionRlimits {
  /** RLIMIT_AS, in bytes. */
  addressSpaceBytes: number;
  /** RLIMIT_NPROC; `undefined` when it would not be enforced per sandbox. */
  maxProcesses?: number;
  /** RLIMIT_FSIZE, in bytes. */
  maxFileSizeBytes: number;
  /** RLIMIT_NOFILE. */
  maxOpenFiles: number;
  /** V8 `--max-old-space-size` in MiB (JavaScript and TypeScript only). */
  v8HeapMiB?: number;
}

/** Derives the rlimits of one execution from the memory budget; pure, so it is unit-tested. */
export function rlimitsFor(language: Language, limits: ProcessLimits, enforceProcesses: boolean): ExecutionRlimits {
  const base = {
    maxFileSizeBytes: limits.maxFileSizeBytes,
    maxOpenFiles: limits.maxOpenFiles,
    ...(enforceProcesses ? { maxProcesses: limits.maxProcesses } : {}),
  };
  if (language === 'python') {
    return { ...base, addressSpaceBytes: limits.memoryLimitBytes + PYTHON_ADDRESS_SPACE_HEADROOM_BYTES };
  }
  return {
    ...base,
    addressSpaceBytes: limits.memoryLimitBytes + NODE_ADDRESS_SPACE_HEADROOM_BYTES,
    v8HeapMiB: Math.max(16, Math.floor((limits.memoryLimitBytes * NODE_HEAP_SHARE) / MIB)),
  };
}

/** The flags that apply `rlimits`, as util-linux `prlimit` and `podflow-launch` take them (before their `--`). */
export function prlimitArgs(rlimits: ExecutionRlimits): string[] {
  const args = [`--as=${rlimits.addressSpaceBytes}`, `--fsize=${rlimits.maxFileSizeBytes}`, `--nofile=${rlimits.maxOpenFiles}`, '--core=0'];
  if (rlimits.maxProcesses !== undefined) args.push(`--nproc=${rlimits.maxProcesses}`);
  return args;
}

/** Most bytes accepted on the runner's stdout: the framed response plus JSON escaping slack. */
export function stdoutCapBytes(limits: RunnerLimits): number {
  return limits.maxOutputBytes * 2 + limits.maxLogBytes * 4 + MIB;
}
