import type { CapturedLogs, JsonObject, Language, NodeError, Resources, RunnerLimits } from '@podflow/protocol';
import type { Readable } from 'node:stream';
import type { ResolvedLayer } from './layers/layer';

/** One execution as a driver sees it. */
export interface SandboxRequest {
  executionId: string;
  tenantId: string;
  runId: string;
  nodeId: string;
  attempt: number;
  language: Language;
  code: string;
  args: JsonObject;
  timeoutMs: number;
  dependencies: string[];
  network: boolean;
  /** main may return any JSON value (RunnerRequest `returnAny`). */
  returnAny?: boolean;
  resources?: Resources;
  /** Overrides of the driver's default runner limits. */
  limits?: Partial<RunnerLimits>;
  /** The dependency layer to mount read-only (set by `LayerResolvingDriver`). */
  layer?: ResolvedLayer;
}

/** How an execution got its dependency layer. */
export interface LayerUse {
  key: string;
  source: ResolvedLayer['source'];
  resolveMs: number;
}

/** A file the code left under `/home/user`, readable until `SandboxOutcome.dispose()`. */
export interface CollectedFile {
  /** Relative to `/home/user`. */
  path: string;
  size: number;
  sha256: string;
  open(): Readable;
}

export interface SandboxOutcome {
  status: 'succeeded' | 'failed';
  output?: JsonObject;
  error?: NodeError;
  logs: CapturedLogs;
  files: CollectedFile[];
  /** Wall time inside the sandbox. */
  durationMs: number;
  /** The sandbox's peak memory, where the driver measures it (process driver with cgroups; not on Kubernetes). */
  peakMemoryBytes?: number;
  /** Kubernetes: from creating this execution's pod to its container running (absent for a warm or adopted pod). */
  podStartMs?: number;
  /** Present when the request declared dependencies. */
  layer?: LayerUse;
  /** What the driver changed about the request (resources clamped to the operator's maximum). */
  warnings?: string[];
  /** Frees the sandbox's leftovers (its working directory, a pod...). Idempotent. */
  dispose(): Promise<void>;
}

/**
 * A way to run one execution in a fresh sandbox. Implementations never throw for failures of the
 * user's code or of the sandbox: those are `status: 'failed'` outcomes with an error code. They
 * throw only for bugs. Aborting `signal` kills the sandbox and yields a `CANCELED` outcome.
 */
export interface SandboxDriver {
  readonly name: string;
  /**
   * Runs one execution. With `handOver`, the code is not handed to the sandbox before it resolves:
   * the driver prepares (starts or takes a sandbox) meanwhile, then looks at `signal` again, so a
   * check the caller runs alongside (is this execution canceled?) costs no time and still comes
   * before any user code. It must not reject.
   */
  execute(request: SandboxRequest, signal: AbortSignal, handOver?: Promise<void>): Promise<SandboxOutcome>;
  /** Releases driver-wide resources (watchers, pools). */
  close(): Promise<void>;
}

/** Injected logger; pino-compatible `(obj, msg)` calls. */
export interface SandboxLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
}
