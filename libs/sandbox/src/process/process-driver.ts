import { requestReceivedMarker, responseEndMarker, type CapturedLogs, type NodeError, type RunnerLimits, type RunnerRequest } from '@podflow/protocol';
import { readRunnerResponse, responseBounds, runnerArgv, runnerAssets, type RunnerAssets } from '@podflow/runner';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { CollectedFile, SandboxDriver, SandboxLogger, SandboxOutcome, SandboxRequest } from '../driver';
import type { InstallerRunner } from '../layers/installer';
import { LAYER_MOUNT_PATH, layerEnv } from '../layers/layer';
import { runHostInstaller } from '../layers/local-layer-backend';
import { mergeRunnerLimits } from '../limits';
import type { ClassifiedOutcome } from '../outcome';
import { classifyOutcome } from './process-outcome';
import { resolveResources, type ExecutionResources, type ResourcePolicy } from '../resources';
import { buildBubblewrapArgs, SANDBOX_HOME, SANDBOX_PATH, SANDBOX_RUNNER_PATHS } from './bubblewrap';
import { EgressUnavailableError, HomeUnmounter, prepareExecutionSandbox, type ExecutionHost, type ExecutionSandbox } from './execution-sandbox';
import { runConfinedInstaller, type ConfinedInstallerOptions } from './confined-installer';
import { collectFiles } from './file-collect';
import { closeInheritedDescriptors } from './inherited-descriptors';
import { planIsolation, type IsolationMode, type IsolationPlan, type IsolationReport } from './isolation-plan';
import { BUILT_LAUNCHER, buildLaunch } from './launch';
import { UnmountServer } from './unmount-server';
import { SpawnServer } from './spawn-server';
import { DEFAULT_PROCESS_LIMITS, prlimitArgs, rlimitsFor, stdoutCapBytes, type ProcessLimits } from './rlimits';
import { startSandboxProcess, type SandboxLaunchSpec, type StartedSandboxProcess } from './sandbox-process';
import { WarmPool, poolRuntimeOf, type PoolRuntime, type WarmPoolStats, type WarmSandbox } from './warm-pool';
import { DEFAULT_SANDBOX_UIDS, type UidRange } from './uid-pool';

/** Options of the process driver. Everything is injected: the library reads no environment. */
export interface ProcessDriverOptions {
  /** `auto` (default): bubblewrap when `bwrap --ro-bind / / true` works here, else `none` with a loud warning. */
  isolation?: IsolationMode;
  /** Default `/usr/bin/python3` when it exists, else `python3` (looked up on `/usr/local/bin:/usr/bin:/bin`). */
  pythonBin?: string;
  /** Default `process.execPath`. */
  nodeBin?: string;
  /** Parent of the per-execution directories. Default `<os.tmpdir()>/podflow-sandbox`. */
  workRoot?: string;
  /** Driver-wide overrides of the protocol's runner limits (a request's own `limits` win). */
  limits?: Partial<RunnerLimits>;
  /** Memory budget per execution (default 512 MiB); a request's `resources.memory` replaces it. */
  memoryLimitBytes?: number;
  /** The most memory a request may ask for (default 4 GiB); more is clamped, with a warning on the result. */
  maxMemoryBytes?: number;
  /** CPU per execution in millicores when a request asks for none (default 1000), and the most it may ask for (default 4000). */
  cpuMillis?: number;
  maxCpuMillis?: number;
  /** Size of the `/home/user` tmpfs when the driver runs as root (default 256 MiB; files there count as memory). */
  homeSizeBytes?: number;
  /** Size of `/dev/shm` (default 16 MiB). */
  shmSizeBytes?: number;
  /** Private IPv4 ranges that executions granted egress may reach (default none). */
  egressAllowCidrs?: string[];
  /** `false` turns per-execution cgroups off even as root (default on where available). */
  cgroups?: boolean;
  /** RLIMIT_NPROC per sandbox (default 64); enforced only with dedicated sandbox uids. */
  maxProcesses?: number;
  /** RLIMIT_FSIZE: largest single file (default 100 MiB). */
  maxFileSizeBytes?: number;
  /** RLIMIT_NOFILE per process (default 1024): the host's open-file table is shared. */
  maxOpenFiles?: number;
  /** Size of the sandbox's RAM-backed `/tmp` (default 64 MiB). */
  tmpSizeBytes?: number;
  /** Host uids for sandboxes when the driver runs as root (default 1.9e9 + 65536); `false` keeps bwrap as root. */
  sandboxUids?: UidRange | false;
  /** Default `bwrap` (found on PATH). */
  bwrapBin?: string;
  /** Default `prlimit` (util-linux, found on PATH). */
  prlimitBin?: string;
  /**
   * The launcher of root workers (native/podflow-launch.c; default: the one `npm run build` put in
   * this package's dist); `false` starts sandboxes through the sh chain (launch.ts).
   */
  launcherBin?: string | false;
  /**
   * Start the launcher's sandboxes through its spawn server (spawn-server.ts; default true): a
   * `child_process.spawn` forks the whole worker and blocks its event loop for ~1.5 ms per sandbox.
   * `false`, or no launcher: the worker spawns them itself.
   */
  spawnServer?: boolean;
  /**
   * Warm sandboxes kept started per runtime (Python; Node for JavaScript and TypeScript), each
   * serving one execution (default 0: every execution starts cold). Only executions with the
   * default resources, no dependency layer and no egress take one; the others start cold.
   */
  warmPoolSize?: number;
  /** Runner programs; default `runnerAssets()` of `@podflow/runner`. */
  runnerAssets?: RunnerAssets;
  logger?: SandboxLogger;
}

/**
 * Runs each execution as a child process of the worker, wrapped in bubblewrap on Linux (see
 * README.md for what that isolates), in a fresh host directory mounted at `/home/user`.
 */
export class ProcessDriver implements SandboxDriver {
  readonly name = 'process';
  private readonly workRoot: string;
  private readonly limits: ProcessLimits;
  private readonly resourcePolicy: ResourcePolicy;
  /** The interpreters sandboxes run (dependency layers are built for these). */
  readonly interpreters: { python: string; node: string };
  private readonly assets: RunnerAssets;
  private ready?: Promise<IsolationPlan>;
  private readonly running = new Set<AbortController>();
  private readonly defaultResources: ExecutionResources;
  private pool?: WarmPool;
  /** Batches the unmounting of home tmpfs mounts (root only). */
  private unmounter?: HomeUnmounter;
  private spawner?: SpawnServer;
  private closed = false;

  constructor(private readonly options: ProcessDriverOptions = {}) {
    this.workRoot = options.workRoot ?? join(tmpdir(), 'podflow-sandbox');
    this.limits = {
      memoryLimitBytes: options.memoryLimitBytes ?? DEFAULT_PROCESS_LIMITS.memoryLimitBytes,
      maxProcesses: options.maxProcesses ?? DEFAULT_PROCESS_LIMITS.maxProcesses,
      maxFileSizeBytes: options.maxFileSizeBytes ?? DEFAULT_PROCESS_LIMITS.maxFileSizeBytes,
      tmpSizeBytes: options.tmpSizeBytes ?? DEFAULT_PROCESS_LIMITS.tmpSizeBytes,
      maxOpenFiles: options.maxOpenFiles ?? DEFAULT_PROCESS_LIMITS.maxOpenFiles,
    };
    this.resourcePolicy = {
      defaultMemoryBytes: this.limits.memoryLimitBytes,
      maxMemoryBytes: Math.max(options.maxMemoryBytes ?? 4 * 1024 ** 3, this.limits.memoryLimitBytes),
      defaultCpuMillis: options.cpuMillis ?? 1000,
      maxCpuMillis: Math.max(options.maxCpuMillis ?? 4000, options.cpuMillis ?? 1000),
    };
    this.interpreters = {
      python: options.pythonBin ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'),
      node: options.nodeBin ?? process.execPath,
    };
    this.assets = options.runnerAssets ?? runnerAssets();
    this.defaultResources = resolveResources(undefined, this.resourcePolicy);
  }

  /**
   * Probes the host once (bwrap, prlimit, uids) and says how executions will be isolated, and
   * whether sandboxes are started by the spawn server (root with the launcher, `spawnServer` not false).
   */
  async init(): Promise<IsolationReport & { spawnServer: boolean }> {
    const plan = await this.plan();
    if (plan.kind === 'unavailable') throw new Error(plan.message);
    this.startPool(plan);
    return { ...plan.report, spawnServer: plan.kind === 'bubblewrap' && this.spawnServerFor(plan) !== undefined };
  }

  /** How the warm pool is doing (undefined without one). */
  poolStats(): WarmPoolStats | undefined {
    return this.pool?.stats();
  }

  async execute(request: SandboxRequest, signal: AbortSignal, handOver?: Promise<void>): Promise<SandboxOutcome> {
    const limits = mergeRunnerLimits(this.options.limits, request.limits);
    if (signal.aborted) return failedOutcome({ code: 'CANCELED', message: 'execution canceled' }, 0);
    const plan = await this.plan();
    if (plan.kind === 'unavailable') return failedOutcome({ code: 'SANDBOX_LOST', message: plan.message }, 0);
    const missing = await this.missingRunner(request);
    if (missing) return failedOutcome({ code: 'SANDBOX_LOST', message: missing }, 0);

    const resources = resolveResources(request.resources, this.resourcePolicy);
    const network = request.network && plan.kind === 'bubblewrap';
    this.startPool(plan);
    const warm = this.warmFor(request, resources, network);
    let sandbox: ExecutionSandbox;
    try {
      sandbox = warm?.sandbox ?? (await this.prepare(plan, resources, network));
    } catch (error) {
      if (error instanceof EgressUnavailableError) return failedOutcome({ code: 'SANDBOX_LOST', message: error.message }, 0);
      const message = `could not prepare the sandbox under ${this.workRoot}: ${(error as Error).message}`;
      return failedOutcome({ code: 'SANDBOX_LOST', message }, 0);
    }
    // close() aborts whatever is still running through this controller.
    const local = new AbortController();
    const onAbort = (): void => local.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    // An abort while the plan or the directory was being prepared fired before the listener.
    if (signal.aborted) local.abort();
    this.running.add(local);
    // Resolves once nothing the code started is left; the uid, cgroups and network are freed after it.
    let teardown: Promise<void> = Promise.resolve();
    let started: { process: StartedSandboxProcess; command: string } | undefined;
    let handedOver = false;
    try {
      const memoryLimitBytes = resources.memoryBytes;
      const nonce = randomBytes(16).toString('hex');
      const runnerRequest: RunnerRequest = {
        language: request.language,
        code: request.code,
        args: request.args,
        workdir: plan.kind === 'bubblewrap' ? SANDBOX_HOME : sandbox.homeDir,
        limits,
        nonce,
        // The runner says on stderr when it has the request: past that line, nothing is the wrappers' fault.
        announce: true,
        ...(request.returnAny ? { returnAny: true } : {}),
      };
      if (warm) started = warm;
      else {
        const launch = this.launchSpec(plan, sandbox, request.language, memoryLimitBytes, request.layer?.hostPath ? request.layer : undefined);
        started = { process: startSandboxProcess(launch), command: launch.command };
      }
      // The sandbox starts (or waits, warm) meanwhile; run() sees an abort this brought.
      await handOver;
      handedOver = true;
      const run = await started.process.run({
        stdin: JSON.stringify(runnerRequest),
        stdoutCapBytes: stdoutCapBytes(limits),
        timeoutMs: Math.min(Math.max(request.timeoutMs, 1), 2 ** 31 - 1),
        signal: local.signal,
        startMarker: requestReceivedMarker(nonce),
        endMarker: `${responseEndMarker(nonce)}\n`,
        awaitTeardown: false,
      });
      teardown = run.teardown;
      const answer = run.stdout ? readRunnerResponse(run.stdout, nonce, responseBounds(limits)) : undefined;
      const response = answer && 'response' in answer ? answer.response : undefined;
      if (warm && !response && !run.runnerStarted && run.termination === 'exited') {
        // It ended while waiting, just before it was taken: nothing of this execution ran.
        await teardown;
        return failedOutcome({ code: 'SANDBOX_LOST', message: 'the warm sandbox taken for this execution had ended before it received the request' }, run.durationMs, () => teardown.then(() => sandbox.dispose()));
      }
      // An answer without files is final as it is: the kernel finishes the sandbox off in the
      // background. Files are read only from a dead sandbox (nothing may still write them), and an
      // ending without an answer is judged once the memory cgroup has seen all of it.
      if (!response || response.files.length > 0) await teardown;
      // Only an ending without an answer is explained by the memory cgroup (an answer is the result).
      const oomKilled = sandbox.cgroup && !answer ? await sandbox.cgroup.oomKilled() : undefined;
      const classified = classifyOutcome(run, response ?? (answer && 'refused' in answer ? answer : undefined), {
        timeoutMs: request.timeoutMs,
        command: started.command,
        bubblewrap: plan.kind === 'bubblewrap',
        memoryLimitBytes,
        maxFileSizeBytes: this.limits.maxFileSizeBytes,
        stdoutCapBytes: stdoutCapBytes(limits),
        maxLogBytes: limits.maxLogBytes,
        ...(oomKilled !== undefined ? { oomKilled } : {}),
      });
      const [files, peakMemoryBytes] = await Promise.all([this.files(classified, response?.ok ? response.files : [], sandbox.homeDir, limits, request), sandbox.cgroup?.peakMemoryBytes()]);
      const dispose = (): Promise<void> => teardown.then(() => sandbox.dispose());
      const measured = peakMemoryBytes !== undefined && Number.isFinite(peakMemoryBytes) ? { peakMemoryBytes } : {};
      return { ...classified, ...files, ...(resources.notes.length > 0 ? { warnings: resources.notes } : {}), ...measured, durationMs: run.durationMs, dispose };
    } catch (error) {
      // A sandbox started (or taken) but never handed its request is still waiting: end it first.
      if (started && !handedOver) await started.process.discard();
      await teardown;
      await sandbox.dispose();
      throw error;
    } finally {
      // Freed as soon as the sandbox is gone, whether or not the caller disposes of it soon.
      void teardown.then(() => sandbox.release());
      signal.removeEventListener('abort', onAbort);
      this.running.delete(local);
    }
  }

  /**
   * The runner of dependency installs for `LocalLayerBackend`: confined like user code under
   * bubblewrap (`confined-installer.ts`); a plain child process only with `none` isolation, where
   * user code is not confined either.
   */
  installerRunner(options: Omit<ConfinedInstallerOptions, 'nodeBin' | 'logger' | 'scratchRoot'>): InstallerRunner {
    return async (run) => {
      const plan = await this.plan();
      if (plan.kind === 'unavailable') return { kind: 'spawn-error', message: plan.message, output: '' };
      if (plan.kind === 'none') return runHostInstaller(run);
      return runConfinedInstaller(plan, { ...options, nodeBin: this.interpreters.node, scratchRoot: this.workRoot, logger: this.options.logger }, run);
    };
  }

  /** Kills the executions still running (they end as CANCELED) and the warm sandboxes waiting. */
  async close(): Promise<void> {
    this.closed = true;
    for (const controller of this.running) controller.abort();
    await this.pool?.close();
    this.unmounter?.close();
    this.spawner?.close();
  }

  /** Starts the warm pool once the host is known to run sandboxes (idempotent). */
  private startPool(plan: IsolationPlan): void {
    // Bubblewrap only: without it a waiting runner's stdin and home are reachable by any code
    // running under the worker's uid, which could then read the next tenant's request.
    if (this.pool || this.closed || plan.kind !== 'bubblewrap' || !this.options.warmPoolSize) return;
    this.pool = new WarmPool({
      size: this.options.warmPoolSize,
      runtimes: ['python', 'node'],
      start: (runtime) => this.startWarm(plan, runtime),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
    });
    this.pool.fill();
  }

  /**
   * A warm sandbox for this request when it needs nothing a tenant-neutral one lacks: the default
   * CPU and memory (cgroups and rlimits are set at start), no dependency layer (a mount), no egress
   * (a network namespace). Anything else starts cold.
   */
  private warmFor(request: SandboxRequest, resources: ExecutionResources, network: boolean): WarmSandbox | undefined {
    if (!this.pool || network || request.layer?.hostPath) return undefined;
    if (resources.memoryBytes !== this.defaultResources.memoryBytes || resources.cpuMillis !== this.defaultResources.cpuMillis) return undefined;
    return this.pool.take(poolRuntimeOf(request.language));
  }

  /** The cold path without a request: a sandbox with the default resources, its runner waiting on stdin. */
  private async startWarm(plan: Exclude<IsolationPlan, { kind: 'unavailable' }>, runtime: PoolRuntime): Promise<WarmSandbox> {
    const sandbox = await this.prepare(plan, this.defaultResources, false);
    try {
      const launch = this.launchSpec(plan, sandbox, runtime === 'python' ? 'python' : 'javascript', this.defaultResources.memoryBytes, undefined, true);
      return { runtime, sandbox, process: startSandboxProcess(launch), command: launch.command, startedAt: Date.now() };
    } catch (error) {
      await sandbox.dispose();
      throw error;
    }
  }

  private prepare(plan: Exclude<IsolationPlan, { kind: 'unavailable' }>, resources: ExecutionResources, network: boolean): Promise<ExecutionSandbox> {
    return prepareExecutionSandbox(
      { workRoot: this.workRoot, ...(plan.kind === 'bubblewrap' ? { uids: plan.uids, cgroups: plan.cgroups, egress: plan.egress, ...this.homeMounts(plan) } : {}) },
      {
        cgroupLimits: { memoryBytes: resources.memoryBytes, maxProcesses: this.limits.maxProcesses, cpuMillis: resources.cpuMillis },
        homeSizeBytes: this.options.homeSizeBytes ?? DEFAULT_HOME_SIZE_BYTES,
        // Egress exists only inside bubblewrap's own namespaces; `none` isolation never gets it.
        network,
      },
    );
  }

  /** Sized tmpfs homes, as root: mounted by each launch chain, unmounted in batches (one unmounter per driver). */
  private homeMounts(plan: Extract<IsolationPlan, { kind: 'bubblewrap' }>): Pick<ExecutionHost, 'mountBin' | 'unmounter'> {
    if (!plan.root) return {};
    const { launcher } = plan.root.launch;
    this.unmounter ??= new HomeUnmounter(plan.root.umount, undefined, undefined, launcher ? new UnmountServer(launcher, resolve(this.workRoot)) : undefined);
    return { mountBin: plan.root.mount, unmounter: this.unmounter };
  }

  /** The spawn server of a root plan whose launcher can be one, unless the options turn it off (one per driver). */
  private spawnServerFor(plan: Extract<IsolationPlan, { kind: 'bubblewrap' }>): SpawnServer | undefined {
    const launcher = plan.root?.launch.launcher;
    if (launcher === undefined || !plan.root?.spawnServer || this.options.spawnServer === false) return undefined;
    return (this.spawner ??= new SpawnServer(launcher, this.options.logger));
  }

  private plan(): Promise<IsolationPlan> {
    if (!this.ready) this.closeInherited();
    this.ready ??= planIsolation({
      isolation: this.options.isolation ?? 'auto',
      platform: process.platform,
      hostUid: process.getuid?.(),
      bwrapBin: this.options.bwrapBin ?? 'bwrap',
      prlimitBin: this.options.prlimitBin ?? 'prlimit',
      launcherBin: this.options.launcherBin ?? BUILT_LAUNCHER,
      workRoot: this.workRoot,
      sandboxUids: this.options.sandboxUids ?? DEFAULT_SANDBOX_UIDS,
      egressAllowCidrs: this.options.egressAllowCidrs ?? [],
      cgroups: this.options.cgroups ?? true,
      interpreters: this.interpreters,
      runnerFiles: [this.assets.python, this.assets.node],
      pythonRunner: this.assets.python,
      logger: this.options.logger,
    }).catch((error: unknown): IsolationPlan => {
      // Not cached: a work root that could not be created (full disk, permissions) may be fixed.
      this.ready = undefined;
      return { kind: 'unavailable', message: `could not prepare the sandbox work root ${this.workRoot}: ${(error as Error).message}` };
    });
    return this.ready;
  }

  /**
   * Before anything is started: descriptors this process inherited without close-on-exec would
   * reach every sandbox (inherited-descriptors.ts), so they are closed, with a warning naming each.
   */
  private closeInherited(): void {
    const closed = closeInheritedDescriptors();
    if (closed.length > 0) {
      this.options.logger?.warn(
        { descriptors: closed },
        'closed file descriptors this process inherited without close-on-exec: every sandbox would have inherited them (start the worker without extra open descriptors)',
      );
    }
  }

  private async missingRunner(request: SandboxRequest): Promise<string | undefined> {
    const path = request.language === 'python' ? this.assets.python : this.assets.node;
    const present = await access(path).then(
      () => true,
      () => false,
    );
    return present ? undefined : `the ${request.language} runner program is missing at ${path}; build libs/runner (node scripts/bundle.mjs)`;
  }

  private launchSpec(
    plan: Exclude<IsolationPlan, { kind: 'unavailable' }>,
    sandbox: ExecutionSandbox,
    language: SandboxRequest['language'],
    memoryLimitBytes: number,
    layer: SandboxRequest['layer'],
    warm = false,
  ): SandboxLaunchSpec {
    const bubblewrap = plan.kind === 'bubblewrap';
    // With a pids cgroup the process budget is per execution; RLIMIT_NPROC (per uid) stays as a second fence.
    const rlimits = rlimitsFor(language, { ...this.limits, memoryLimitBytes }, bubblewrap && sandbox.uid !== undefined);
    const compiled = bubblewrap ? plan.compiledPythonRunner : undefined;
    const assets = bubblewrap ? { python: compiled ? SANDBOX_RUNNER_PATHS.pythonCompiled : SANDBOX_RUNNER_PATHS.python, node: SANDBOX_RUNNER_PATHS.node } : this.assets;
    const runner = runnerArgv(language, assets, this.interpreters);
    // A warm Node runner compiles its transforms while it waits (node-runner.ts `--prewarm`).
    if (warm && language !== 'python') runner.push('--prewarm');
    // V8 must hit its own heap limit (a clear "heap out of memory") before RLIMIT_AS bites.
    if (rlimits.v8HeapMiB !== undefined) runner.splice(1, 0, `--max-old-space-size=${rlimits.v8HeapMiB}`);
    const env = {
      PATH: SANDBOX_PATH,
      HOME: bubblewrap ? SANDBOX_HOME : sandbox.homeDir,
      LANG: 'C.UTF-8',
      PYTHONDONTWRITEBYTECODE: '1',
      TMPDIR: bubblewrap ? '/tmp' : join(sandbox.execDir, 'tmp'),
      // glibc reserves 64 MiB of address space per thread arena; under RLIMIT_AS that starves threads.
      MALLOC_ARENA_MAX: '2',
      ...(layer?.hostPath ? layerEnv(layer.ecosystem, bubblewrap ? LAYER_MOUNT_PATH : layer.hostPath) : {}),
    };
    const sandboxed = bubblewrap
      ? [
          plan.bwrapBin,
          ...buildBubblewrapArgs({
            homeDir: sandbox.homeDir,
            rootEntries: plan.rootEntries,
            syntheticEtc: plan.syntheticEtc,
            runner: { python: compiled ?? this.assets.python, node: this.assets.node },
            extraReadOnly: plan.extraReadOnly,
            ...(layer?.hostPath ? { layerDir: layer.hostPath } : {}),
            network: sandbox.egress !== undefined,
            tmpSizeBytes: this.limits.tmpSizeBytes,
            ...(this.options.shmSizeBytes !== undefined ? { shmSizeBytes: this.options.shmSizeBytes } : {}),
            infoFd: 3,
            ...(plan.seccomp ? { seccompFd: 4 } : {}),
            env,
            command: runner,
          }),
        ]
      : runner;
    const launch = buildLaunch({
      command: sandboxed,
      // podflow-launch sets them itself, prlimit or not.
      ...(plan.prlimitBin || (bubblewrap && plan.root?.launch.launcher) ? { rlimits: prlimitArgs(rlimits) } : {}),
      ...(bubblewrap && plan.root ? { cgroupProcsFiles: sandbox.cgroup?.procsFiles, netnsPath: sandbox.egress?.path, homeTmpfs: sandbox.homeTmpfs } : {}),
      uid: sandbox.uid,
      binaries: { ...(bubblewrap ? plan.root?.launch : undefined), prlimit: plan.prlimitBin },
    });
    const argv = launch.argv;
    const server = bubblewrap && argv[0] === plan.root?.launch.launcher && !launch.spawnIds ? this.spawnServerFor(plan) : undefined;
    return {
      command: argv[0],
      args: argv.slice(1),
      // Not the execution's directory: bwrap (pid 1 of the sandbox, readable there) would show it in
      // its PWD; every path of the chain is absolute.
      cwd: bubblewrap ? '/' : sandbox.homeDir,
      // Never the worker's environment: bwrap's own process (pid 1 in the sandbox) keeps what it
      // is spawned with, readable in /proc/1/environ, whatever --clearenv does for the code.
      env,
      ...(launch.spawnIds ? { ids: launch.spawnIds } : {}),
      stderrTailBytes: 64 * 1024,
      infoFd: bubblewrap,
      ...(bubblewrap && plan.seccomp ? { seccompProgram: plan.seccomp } : {}),
      ...(server ? { server: { spawner: server, launch: true } } : {}),
    };
  }

  private async files(
    classified: ClassifiedOutcome,
    reported: Parameters<typeof collectFiles>[1],
    homeDir: string,
    limits: RunnerLimits,
    request: SandboxRequest,
  ): Promise<{ files: CollectedFile[] } & Partial<ClassifiedOutcome>> {
    if (classified.status !== 'succeeded' || reported.length === 0) return { files: [] };
    let collected: Awaited<ReturnType<typeof collectFiles>>;
    try {
      collected = await collectFiles(homeDir, reported, limits);
    } catch (error) {
      // The directory went away under the host (removed by something else on the work root, a
      // disk error): the code ran, but what it left is lost. A result, never a throw: a throw
      // would fail the queue job, which runs the code again without anyone seeing why.
      const message = `the files the code left under /home/user could not be read on the host: ${(error as Error).message}`;
      return { files: [], status: 'failed', error: { code: 'SANDBOX_LOST', message }, output: undefined };
    }
    if (collected.rejected.length > 0) {
      this.options.logger?.warn(
        { executionId: request.executionId, rejected: collected.rejected },
        'files reported by the runner were refused by the host-side check and are not returned',
      );
    }
    if (collected.ok) return { files: collected.files };
    return { files: [], status: 'failed', error: collected.error, output: undefined };
  }
}

/** Default size of the `/home/user` tmpfs (the Kubernetes driver's `K8S_HOME_SIZE` default too). */
const DEFAULT_HOME_SIZE_BYTES = 256 * 1024 * 1024;

function failedOutcome(error: NodeError, durationMs: number, dispose: () => Promise<void> = async () => undefined): SandboxOutcome {
  const logs: CapturedLogs = { stdout: '', stderr: '', truncated: false };
  return { status: 'failed', error, logs, files: [], durationMs, dispose };
}
