import { Attach, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { requestReceivedMarker, unstorableFilesError, unstorablePathReason, type CapturedLogs, type RunnerLimits, type RunnerRequest, type RunnerResponse, type UnstorableFile } from '@podflow/protocol';
import { parseFileFrames, readRunnerResponse, responseBounds, type EmittedFile } from '@podflow/runner';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { CollectedFile, SandboxDriver, SandboxLogger, SandboxOutcome, SandboxRequest } from '../driver';
import { filesTooLarge, mergeRunnerLimits } from '../limits';
import { classifyEnding, type RefusedAnswer, type SandboxEnding } from '../outcome';
import { ANNOTATIONS, LABELS, SANDBOX_SELECTOR, executionLabel, podNameFor } from './pod-identity';
import { CONTAINER_NAME, SANDBOX_HOME, buildSandboxPod, type PodPlacement } from './pod-spec';
import { isOomKilled, podStage, startFailureReason } from './pod-state';
import { PodWatch } from './pod-watch';
import { DEFAULT_POD_RESOURCE_POLICY, resolvePodResources, type PodResourcePolicy, type PodResources } from './resources';
import { ByteCollector, readPodLogBytes, type PodLog } from './streams';
import { WarmPodPool } from './warm-pods';

export interface KubernetesDriverOptions {
  kubeConfig: KubeConfig;
  placement: PodPlacement;
  workerId: string;
  resourcePolicy?: PodResourcePolicy;
  /** How long a pod may take to be scheduled and start its container (default 60 s). */
  startTimeoutMs?: number;
  /** Driver-wide overrides of the protocol's runner limits (a request's own `limits` win). */
  limits?: Partial<RunnerLimits>;
  /**
   * Warm pods per runtime kept in the namespace (shared by all workers there; default 0: every
   * execution creates its pod). Executions with the default resources, no layer and no egress
   * claim one; `warmPool` must then be started (`start(intervalMs)`) to keep it filled.
   */
  warmPoolSize?: number;
  logger?: SandboxLogger;
}

/** Where an execution runs: a pod created for it, a warm pod it claimed, or its own pod found again (re-delivery). */
type PodChoice = { kind: 'create'; name: string } | { kind: 'claimed'; name: string } | { kind: 'found'; pod: V1Pod; name: string };

const NO_LOGS: CapturedLogs = { stdout: '', stderr: '', truncated: false };
/** After the runner's stream ends without a full answer, how long to wait for the pod's final status. */
const FINAL_STATUS_WAIT_MS = 15_000;
/** Reads of an ended pod's log before its answer counts as unreadable. */
const LOG_READ_ATTEMPTS = 3;

type Ending = { kind: 'stream-closed' } | { kind: 'timeout' } | { kind: 'canceled' } | { kind: 'pod-ended' };

/**
 * Runs each execution in its own short-lived pod (SANDBOX_DRIVER=kubernetes). Code, arguments,
 * output and files move only through the Kubernetes API: the request goes to the runner's stdin
 * over an attach stream, and the answer and the files come back on its stdout (the runner's
 * `emitFiles` mode). Sandbox pods need no network at all. See libs/sandbox/README.md.
 */
export class KubernetesDriver implements SandboxDriver {
  readonly name = 'kubernetes';
  readonly core: CoreV1Api;
  private readonly policy: PodResourcePolicy;
  private readonly startTimeoutMs: number;
  private readonly running = new Set<AbortController>();
  /** The shared warm pods (undefined without `warmPoolSize`). */
  readonly warmPool?: WarmPodPool;
  private readonly defaultResources: PodResources;

  constructor(private readonly options: KubernetesDriverOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.policy = options.resourcePolicy ?? DEFAULT_POD_RESOURCE_POLICY;
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
    this.defaultResources = resolvePodResources(undefined, this.policy);
    if (options.warmPoolSize) {
      this.warmPool = new WarmPodPool({
        core: this.core,
        placement: options.placement,
        resources: this.defaultResources,
        requestRatio: this.policy.requestRatio,
        workerId: options.workerId,
        size: options.warmPoolSize,
        ...(options.logger ? { logger: options.logger } : {}),
      });
    }
  }

  get namespace(): string {
    return this.options.placement.namespace;
  }

  async execute(request: SandboxRequest, signal: AbortSignal, handOver?: Promise<void>): Promise<SandboxOutcome> {
    if (signal.aborted) return ended({ kind: 'canceled' }, 0);
    const local = new AbortController();
    const onAbort = (): void => local.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.running.add(local);
    let name = podNameFor(request.executionId);
    const dispose = once(() => this.deletePod(name));
    try {
      const resources = resolvePodResources(request.resources, this.policy);
      const nonce = randomBytes(16).toString('hex');
      const choice = await this.choosePod(request, resources, nonce);
      name = choice.name;
      const outcome = await this.run(request, choice, resources, nonce, local.signal, handOver);
      return { ...outcome, ...(resources.notes.length > 0 ? { warnings: resources.notes } : {}), dispose };
    } catch (error) {
      await dispose();
      throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.running.delete(local);
    }
  }

  async close(): Promise<void> {
    for (const controller of this.running) controller.abort();
  }

  /**
   * With warm pods: the execution's own pod if an earlier delivery of it claimed one (adopted like
   * a created one), else a warm pod claimed now; otherwise, and when it needs anything a warm pod
   * lacks (resources, a layer, egress), a pod created for it.
   */
  private async choosePod(request: SandboxRequest, resources: PodResources, nonce: string): Promise<PodChoice> {
    const name = podNameFor(request.executionId);
    const fits = !request.layer && !request.network && resources.cpuMillis === this.defaultResources.cpuMillis && resources.memoryBytes === this.defaultResources.memoryBytes;
    if (!this.warmPool || !fits) return { kind: 'create', name };
    const items = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `${SANDBOX_SELECTOR},${LABELS.execution}=${executionLabel(request.executionId)}` }).then(
      (list) => list.items,
      (error: unknown) => {
        this.options.logger?.warn({ executionId: request.executionId, error: (error as Error).message }, 'could not look for the execution\'s pod; creating one');
        return undefined;
      },
    );
    if (!items) return { kind: 'create', name };
    const own = items.find((pod) => pod.metadata?.annotations?.[ANNOTATIONS.executionId] === request.executionId && !pod.metadata?.deletionTimestamp);
    if (own) return { kind: 'found', pod: own, name: own.metadata!.name! };
    const started = Date.now();
    const deadlineAt = started + request.timeoutMs + 60_000;
    const claimed = await this.warmPool.claim(request.language === 'python' ? 'python' : 'node', {
      executionId: request.executionId,
      tenantId: request.tenantId,
      runId: request.runId,
      nodeId: request.nodeId,
      attempt: request.attempt,
      workerId: this.options.workerId,
      nonce,
      activeDeadlineSeconds: Math.ceil((deadlineAt - started) / 1000),
      deadlineAt,
    });
    return claimed ? { kind: 'claimed', name: claimed } : { kind: 'create', name };
  }

  private async run(request: SandboxRequest, choice: PodChoice, resources: PodResources, nonce: string, signal: AbortSignal, handOver?: Promise<void>): Promise<Omit<SandboxOutcome, 'dispose'>> {
    const name = choice.name;
    const limits = mergeRunnerLimits(this.options.limits, request.limits);
    const started = Date.now();
    const deadlineAt = started + this.startTimeoutMs + request.timeoutMs + 60_000;
    const pod = buildSandboxPod(
      {
        ...request,
        workerId: this.options.workerId,
        resources,
        requestRatio: this.policy.requestRatio,
        activeDeadlineSeconds: Math.ceil((deadlineAt - started) / 1000),
        deadlineAt,
        ...(request.layer ? { layer: { key: request.layer.key, ecosystem: request.layer.ecosystem } } : {}),
      },
      this.options.placement,
    );
    pod.metadata!.annotations![ANNOTATIONS.nonce] = nonce;

    const watch = new PodWatch(this.options.kubeConfig, this.core, this.namespace, name);
    await watch.start();
    try {
      const adopted = choice.kind === 'create' ? await this.createOrAdopt(pod, request.executionId) : choice.kind === 'found' ? choice.pod : undefined;
      const runnerNonce = adopted?.metadata?.annotations?.[ANNOTATIONS.nonce] ?? nonce;
      const runnerRequest: RunnerRequest = {
        language: request.language,
        code: request.code,
        args: request.args,
        workdir: SANDBOX_HOME,
        limits,
        nonce: runnerNonce,
        emitFiles: true,
        ...(request.returnAny ? { returnAny: true } : {}),
      };
      if (adopted) this.options.logger?.info({ executionId: request.executionId, pod: name }, 'adopting the execution\'s existing pod instead of running the code again');

      // 1. Scheduled and started, within the start timeout.
      const startProblem = await this.awaitStart(watch, name, signal);
      if (startProblem) return ended(startProblem, Date.now() - started, NO_LOGS, resources.memoryBytes);
      // Create to running, for a pod this execution created (not a warm or adopted one): the cold start.
      const podStart = choice.kind === 'create' && !adopted ? { podStartMs: Date.now() - started } : {};

      // 2. The request in, the answer out: attach (unless an adopted runner already has its request).
      // Not before the caller's own check (handOver) has answered; a cancel it found ends here.
      await handOver;
      if (signal.aborted) {
        await this.deletePod(name);
        return ended({ kind: 'canceled', detail: 'before the request was sent; the pod was deleted' }, Date.now() - started, NO_LOGS, resources.memoryBytes);
      }
      // A pod claimed just now is waiting for its first request: no need to read its log.
      const needsRequest = choice.kind === 'claimed' || (await this.needsRequest(watch, name, runnerNonce));
      const stdout = new ByteCollector(stdoutCapBytes(limits));
      const stderr = new ByteCollector(256 * 1024);
      const execStarted = Date.now();
      const ending = await this.attachAndWait(watch, name, needsRequest ? runnerRequest : undefined, stdout, stderr, request.timeoutMs, signal);
      if (ending.kind === 'timeout' || ending.kind === 'canceled') {
        await this.deletePod(name);
        const end: SandboxEnding =
          ending.kind === 'timeout' ? { kind: 'timeout', timeoutMs: request.timeoutMs, detail: 'the pod was deleted' } : { kind: 'canceled', detail: 'the pod was deleted' };
        return ended(end, Date.now() - execStarted, { stdout: '', stderr: stderr.tail(limits.maxLogBytes), truncated: stderr.size > limits.maxLogBytes }, resources.memoryBytes);
      }

      // 3. What the runner said, else why it said nothing.
      const answer = readAnswer(stdout.bytes(), runnerNonce, limits);
      if (answer) return { ...answered(answer, execStarted, resources.memoryBytes, limits, stderr), ...podStart };
      return { ...(await this.withoutAnswer(watch, name, runnerNonce, stderr, limits, execStarted, stdout.overflowed, request.timeoutMs, resources.memoryBytes)), ...podStart };
    } finally {
      watch.stop();
    }
  }

  /** Creates the pod; when it already exists (a re-delivered job), returns it to be adopted. */
  private async createOrAdopt(pod: V1Pod, executionId: string): Promise<V1Pod | undefined> {
    try {
      await this.core.createNamespacedPod({ namespace: this.namespace, body: pod });
      return undefined;
    } catch (error) {
      if ((error as { code?: number }).code !== 409) throw error;
      const existing = await this.core.readNamespacedPod({ name: pod.metadata!.name!, namespace: this.namespace });
      if (existing.metadata?.annotations?.[ANNOTATIONS.executionId] !== executionId) {
        throw new Error(`pod ${pod.metadata!.name} exists but belongs to execution ${existing.metadata?.annotations?.[ANNOTATIONS.executionId]}, not ${executionId}`);
      }
      return existing;
    }
  }

  private async awaitStart(watch: PodWatch, name: string, signal: AbortSignal): Promise<SandboxEnding | undefined> {
    const timeout = AbortSignal.timeout(this.startTimeoutMs);
    const stop = AbortSignal.any([timeout, signal]);
    const stage = await watch.until((w) => {
      if (w.gone) return 'gone' as const;
      if (!w.pod) return undefined;
      const current = podStage(w.pod);
      if (current.kind === 'pending') return current.hopeless ? ('hopeless' as const) : undefined;
      return 'started' as const;
    }, stop);
    if (stage === 'started') return undefined;
    if (signal.aborted) {
      await this.deletePod(name);
      return { kind: 'canceled', detail: 'before its pod started; the pod was deleted' };
    }
    if (stage === 'gone') return { kind: 'lost', message: `pod ${this.namespace}/${name} was deleted before it started` };
    const events = await this.core.listNamespacedEvent({ namespace: this.namespace, fieldSelector: `involvedObject.name=${name}` }).then((list) => list.items, () => []);
    const reason = startFailureReason(watch.pod, events);
    await this.deletePod(name);
    const waited = stage === 'hopeless' ? 'could not start' : `did not start within ${this.startTimeoutMs} ms`;
    return { kind: 'start-timeout', message: `pod ${this.namespace}/${name} ${waited}: ${reason}` };
  }

  /** An adopted, running runner that already received its request says so on stderr. */
  private async needsRequest(watch: PodWatch, name: string, nonce: string): Promise<boolean> {
    if (watch.pod && podStage(watch.pod).kind === 'terminated') return false;
    // The marker is the runner's first line once it has the request, before any of the code's.
    const log = await readPodLogBytes(this.options.kubeConfig, this.namespace, name, CONTAINER_NAME, REQUEST_MARKER_SCAN_BYTES).catch(() => ({ bytes: Buffer.alloc(0) }));
    return !log.bytes.includes(requestReceivedMarker(nonce));
  }

  /**
   * Attaches to the runner (sending the request when given) and waits for its stream to close,
   * the timeout, a cancel, or the pod's end. The timeout starts when the request is sent.
   */
  private async attachAndWait(
    watch: PodWatch,
    name: string,
    runnerRequest: RunnerRequest | undefined,
    stdout: ByteCollector,
    stderr: ByteCollector,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<Ending> {
    if (watch.pod && podStage(watch.pod).kind === 'terminated') return { kind: 'pod-ended' };
    const stdin = runnerRequest ? Readable.from([Buffer.from(JSON.stringify(runnerRequest), 'utf8')]) : null;
    let socket: Awaited<ReturnType<Attach['attach']>> | undefined;
    try {
      socket = await new Attach(this.options.kubeConfig).attach(this.namespace, name, CONTAINER_NAME, stdout, stderr, stdin, false);
    } catch (error) {
      this.options.logger?.warn({ pod: name, error: (error as Error).message }, 'attach failed; waiting for the pod to end');
      return { kind: 'pod-ended' };
    }
    const closed = new Promise<Ending>((resolve) => {
      if (socket!.readyState === socket!.CLOSED) resolve({ kind: 'stream-closed' });
      socket!.on('close', () => resolve({ kind: 'stream-closed' }));
    });
    const timer = AbortSignal.timeout(Math.min(Math.max(timeoutMs, 1), 2 ** 31 - 1));
    const stopped = new Promise<Ending>((resolve) => {
      const onTimeout = (): void => resolve({ kind: 'timeout' });
      const onCancel = (): void => resolve({ kind: 'canceled' });
      timer.addEventListener('abort', onTimeout, { once: true });
      if (signal.aborted) onCancel();
      else signal.addEventListener('abort', onCancel, { once: true });
    });
    // A pod that is deleted or evicted ends the wait too (its stream may linger).
    const podEnded = watch.until((w) => (w.gone || (w.pod && podStage(w.pod).kind === 'failed') ? ({ kind: 'pod-ended' } as const) : undefined), AbortSignal.any([timer, signal]));
    const ending = await Promise.race([closed, stopped, podEnded.then((value) => value ?? new Promise<Ending>(() => undefined))]);
    if (ending.kind !== 'stream-closed') socket.close();
    return ending;
  }

  /** The stream ended without a complete answer: the pod's final status says why. */
  private async withoutAnswer(
    watch: PodWatch,
    name: string,
    nonce: string,
    stderr: ByteCollector,
    limits: RunnerLimits,
    execStarted: number,
    overflowed: boolean,
    timeoutMs: number,
    memoryBytes: number,
  ): Promise<Omit<SandboxOutcome, 'dispose'>> {
    const logs: CapturedLogs = { stdout: '', stderr: stderr.tail(limits.maxLogBytes), truncated: stderr.size > limits.maxLogBytes };
    const done = (ending: SandboxEnding): Omit<SandboxOutcome, 'dispose'> => ended(ending, Date.now() - execStarted, logs, memoryBytes);
    if (overflowed) return done({ kind: 'output-too-large', capBytes: stdoutCapBytes(limits), what: 'output and files' });
    const settled = await watch.until((w) => {
      if (w.gone) return 'gone' as const;
      const stage = w.pod ? podStage(w.pod) : undefined;
      return stage?.kind === 'terminated' || stage?.kind === 'failed' ? stage : undefined;
    }, AbortSignal.timeout(FINAL_STATUS_WAIT_MS));
    if (settled === 'gone' || settled === undefined) {
      return done({ kind: 'lost', message: `pod ${this.namespace}/${name} ${settled === 'gone' ? 'was deleted' : 'stopped answering'} before the runner answered` });
    }
    if (settled.kind === 'failed') {
      if (settled.reason === 'DeadlineExceeded') return done({ kind: 'timeout', timeoutMs, detail: `pod ${name} reached its activeDeadlineSeconds backstop: ${settled.message}` });
      return done({ kind: 'lost', message: `pod ${this.namespace}/${name} failed: ${settled.reason}: ${settled.message}` });
    }
    if (isOomKilled(settled.state)) return done({ kind: 'out-of-memory', how: `the container was OOMKilled (exit code ${settled.state.exitCode})` });
    // The container ended on its own but its stream was cut (an adopted pod, a dropped
    // connection): the answer is still in its log. A log that cannot be read is not the code's
    // doing: the execution is lost (retried), not reported as a crash of the runner.
    const logCap = endedLogCapBytes(limits);
    // A container reported as ended may still have its last lines on the way to its log file (the
    // runtime writes them asynchronously): a log without the answer is read once more, a moment
    // later, before the runner is called crashed (an adopted warm pod was, once in a CI run).
    for (let reads = 1; ; reads++) {
      const log = await this.readLogOfEnded(name, logCap);
      if ('error' in log) return done({ kind: 'lost', message: `pod ${this.namespace}/${name} ended, but its log (where the answer is) could not be read: ${log.error}` });
      if (log.cut) return done({ kind: 'output-too-large', capBytes: logCap, what: "output and logs (read from the pod's log, where the answer is)" });
      const fromLog = readAnswer(log.bytes, nonce, limits);
      if (fromLog) return answered(fromLog, execStarted, memoryBytes, limits, stderr);
      if (reads >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, LATE_LOG_WAIT_MS));
    }
    const exit = `exit code ${settled.state.exitCode}${settled.state.reason ? ` (${settled.state.reason})` : ''}`;
    // As on the process driver: a runner that exits on its own without answering is the code's doing (os._exit, a native crash).
    return done({ kind: 'crashed', how: `the runner in pod ${name} ended with ${exit} before returning a result`, details: { exitCode: settled.state.exitCode, stderrTail: logs.stderr.slice(-2000) } });
  }

  /** The log of a pod whose container ended, read up to LOG_READ_ATTEMPTS times (a kubelet that just saw the container end may fail the first read). */
  private async readLogOfEnded(name: string, maxBytes: number): Promise<PodLog | { error: string }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await readPodLogBytes(this.options.kubeConfig, this.namespace, name, CONTAINER_NAME, maxBytes);
      } catch (error) {
        if (attempt >= LOG_READ_ATTEMPTS) return { error: (error as Error).message };
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
      }
    }
  }

  private async deletePod(name: string): Promise<void> {
    await this.core.deleteNamespacedPod({ name, namespace: this.namespace, gracePeriodSeconds: 0 }).catch((error: { code?: number }) => {
      if (error.code !== 404) this.options.logger?.warn({ pod: name, error: String((error as Error).message ?? error) }, 'could not delete a sandbox pod; the reaper will');
    });
  }
}

type Answer = { response: RunnerResponse; files: EmittedFile[]; overMaxFiles?: boolean } | RefusedAnswer;

/** The response and its files, when both arrived whole; refused unread when over `responseBounds`. */
function readAnswer(stdout: Buffer, nonce: string, limits: RunnerLimits): Answer | undefined {
  const read = readRunnerResponse(stdout, nonce, responseBounds(limits));
  if (!read || 'refused' in read) return read;
  const listed = read.response.files.length;
  // FILES_TOO_LARGE, as the process driver says of such a list, without reading a frame.
  if (listed > limits.maxFiles) return { response: read.response, files: [], overMaxFiles: true };
  const frames = parseFileFrames(stdout, nonce, listed);
  if (!frames.ok) return frames.tooMany ? { refused: frames.problem } : undefined;
  return { response: read.response, files: frames.files };
}

function answered(answer: Answer, execStarted: number, memoryBytes: number, limits: RunnerLimits, stderr: ByteCollector): Omit<SandboxOutcome, 'dispose'> {
  if ('refused' in answer) {
    const logs: CapturedLogs = { stdout: '', stderr: stderr.tail(limits.maxLogBytes), truncated: stderr.size > limits.maxLogBytes };
    return ended({ kind: 'answer-refused', detail: answer.refused }, Date.now() - execStarted, logs, memoryBytes);
  }
  return fromAnswer(answer.response, answer.files, execStarted, memoryBytes, limits, answer.overMaxFiles === true);
}

/** Room for the response, its logs and the files it may stream, with a margin for framing. */
function stdoutCapBytes(limits: RunnerLimits): number {
  return limits.maxOutputBytes * 2 + limits.maxLogBytes * 4 + limits.maxFilesBytes + 1024 * 1024;
}

/**
 * A log holds stdout and stderr together: room for stdout's cap and 16 MiB of stderr (the live
 * stream keeps only stderr's tail; a log with more is reported as too much output).
 */
function endedLogCapBytes(limits: RunnerLimits): number {
  return stdoutCapBytes(limits) + 16 * 1024 * 1024;
}

/** How long a log without an answer is given to receive the container's last lines. */
const LATE_LOG_WAIT_MS = 1_000;

/** How much of an adopted pod's log is searched for the request-received marker. */
const REQUEST_MARKER_SCAN_BYTES = 64 * 1024;

/** The outcome of a sandbox ending, through the classifier both drivers share. */
function ended(ending: SandboxEnding, durationMs = 0, logs: CapturedLogs = NO_LOGS, memoryBytes = 0): Omit<SandboxOutcome, 'dispose'> & { dispose: () => Promise<void> } {
  // No answer here (fromAnswer takes those): the logs were bounded where they were read.
  const classified = classifyEnding(ending, { memoryLimitBytes: memoryBytes, logs, maxLogBytes: Number.POSITIVE_INFINITY });
  return { ...classified, files: [], durationMs, dispose: async () => undefined };
}

/**
 * A runner answer and the files it streamed (files only when it succeeded). The answer may have
 * been written by the code (it shares the runner's process): the files are held to the limits and
 * path rules again, and the time is the worker's own, not the duration the answer claims.
 */
function fromAnswer(response: RunnerResponse, emitted: EmittedFile[], execStarted: number, memoryBytes: number, limits: RunnerLimits, overMaxFiles = false): Omit<SandboxOutcome, 'dispose'> {
  const classified = classifyEnding({ kind: 'answered', response }, { memoryLimitBytes: memoryBytes, logs: response.logs, maxLogBytes: limits.maxLogBytes });
  const durationMs = Date.now() - execStarted;
  if (classified.status !== 'succeeded') return { ...classified, files: [], durationMs };
  const unstorable: UnstorableFile[] = emitted.flatMap((file) => {
    const reason = unstorablePathReason(file.path);
    return reason ? [{ path: file.path, reason }] : [];
  });
  const bytes = emitted.reduce((sum, file) => sum + file.content.length, 0);
  const error = unstorable.length > 0 ? unstorableFilesError(unstorable) : overMaxFiles || emitted.length > limits.maxFiles || bytes > limits.maxFilesBytes ? filesTooLarge(limits) : undefined;
  if (error) return { status: 'failed', error, logs: classified.logs, files: [], durationMs };
  const files: CollectedFile[] = emitted.map((file) => ({ path: file.path, size: file.size, sha256: file.sha256, open: () => Readable.from([file.content]) }));
  return { ...classified, files, durationMs };
}

function once(action: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= action());
}
