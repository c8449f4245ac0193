import { PodflowError, isErrorCode, type JsonObject, type RunEventMessage } from '@podflow/protocol';

export interface PodflowClientOptions {
  /** Coordinator base URL, e.g. `http://localhost:8080`. */
  url: string;
  apiKey: string;
}

/** The HTTP API of DESIGN.md, typed loosely where the API returns views. */
export class PodflowClient {
  constructor(private readonly options: PodflowClientOptions) {}

  /** Starts a run; with `webhookUrl`, its completion is POSTed there, signed (see `verifySignature`). */
  submitRun(body: { workflow?: unknown; workflowId?: string; version?: number; inputs?: JsonObject; idempotencyKey?: string; webhookUrl?: string; correlationId?: string }) {
    return this.request<{ id: string; status: string }>('POST', '/v1/runs', body);
  }

  /** The tenant's webhook signing secret (created on first use). */
  webhookSecret() {
    return this.request<{ secret: string; header: string }>('GET', '/v1/webhooks/secret');
  }

  /** A run's webhook delivery attempts, oldest first. */
  webhookDeliveries(runId: string) {
    return this.request<{ deliveries: Array<{ url: string; attempt: number; at: string; ok: boolean; status: number | null; error: string | null; durationMs: number; outcome: 'delivered' | 'retrying' | 'failed' }> }>(
      'GET',
      `/v1/runs/${encodeURIComponent(runId)}/webhook-deliveries`,
    );
  }

  /** A run; its nodes a page at a time (`nodeLimit` ≤ 1000, `nodeCursor` = the previous page's `nextNodeCursor`) or exactly `nodes`. */
  getRun(id: string, page: { nodeLimit?: number; nodeCursor?: string; nodes?: string[] } = {}) {
    const query = new URLSearchParams();
    if (page.nodeLimit !== undefined) query.set('nodeLimit', String(page.nodeLimit));
    if (page.nodeCursor !== undefined) query.set('nodeCursor', page.nodeCursor);
    if (page.nodes !== undefined) query.set('nodes', page.nodes.join(','));
    const suffix = query.size > 0 ? `?${query}` : '';
    return this.request<RunView>('GET', `/v1/runs/${encodeURIComponent(id)}${suffix}`);
  }

  cancelRun(id: string) {
    return this.request<{ id: string; status: string }>('POST', `/v1/runs/${encodeURIComponent(id)}/cancel`);
  }

  /**
   * Resumes a failed or canceled run: a new run, same inputs, that keeps every succeeded node
   * whose definition and upstream did not change. `workflow`: an edited definition (same id);
   * `version`: another registered version.
   */
  resumeRun(id: string, body: { workflow?: unknown; version?: number; idempotencyKey?: string; webhookUrl?: string; correlationId?: string } = {}) {
    return this.request<{ id: string; status: string; resumedFrom: string; kept: string[] }>('POST', `/v1/runs/${encodeURIComponent(id)}/resume`, body);
  }

  /**
   * Test-runs one node (a new run of that node alone, in a real sandbox): its upstream nodes keep
   * the outputs of the latest succeeded run of the workflow (or `fromRun`, or samples in `nodes`).
   * `workflow`: the unsaved definition; `code`: the node's edited code. Wait with `waitForRun(id)`.
   */
  testNode(workflowId: string, nodeId: string, body: { workflow?: unknown; version?: number; code?: string; inputs?: JsonObject; nodes?: Record<string, { output: JsonObject }>; fromRun?: string } = {}) {
    return this.request<{ id: string; status: string; nodeId: string; upstreamFrom?: string; samples: string[] }>(
      'POST',
      `/v1/workflows/${encodeURIComponent(workflowId)}/nodes/${encodeURIComponent(nodeId)}/test`,
      body,
    );
  }

  registerWorkflow(definition: unknown) {
    return this.request<{ id: string; version: number }>('POST', '/v1/workflows', definition);
  }

  execute(body: { language: string; code: string; args?: JsonObject; dependencies?: string[]; timeout?: string }) {
    return this.request<NodeView & { id: string }>('POST', '/v1/executions?wait=true', body);
  }

  /** Follows the run's server-sent events until the run is terminal or `signal` aborts. */
  async *events(runId: string, signal?: AbortSignal): AsyncGenerator<RunEventMessage> {
    const response = await fetch(`${this.base()}/v1/runs/${encodeURIComponent(runId)}/events`, { headers: this.headers(), signal });
    if (!response.ok || !response.body) throw await toError(response);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let boundary: number;
      while ((boundary = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (data) yield JSON.parse(data) as RunEventMessage;
      }
    }
  }

  /**
   * Polls until the run is terminal (for callers that do not want a stream). A poll that fails to
   * reach the coordinator (a connection refused or closed, as when a coordinator is replaced in a
   * rolling update), or that it answers with UNAVAILABLE (503: its Redis did not answer in time;
   * the answer says to retry), is retried until the deadline; any other error status is not.
   */
  async waitForRun(id: string, pollMs = 250, timeoutMs = 3_600_000): Promise<RunView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let unreachable: string | undefined;
      const run = await this.getRun(id).catch((error: unknown) => {
        if (isNetworkError(error)) unreachable = 'could not reach the coordinator';
        else if (error instanceof PodflowError && error.code === 'UNAVAILABLE') unreachable = `was answered: ${error.message}`;
        else throw error;
        return undefined;
      });
      if (run && ['succeeded', 'failed', 'canceled'].includes(run.status)) return run;
      if (Date.now() > deadline) {
        const last = unreachable ? ` (the last poll ${unreachable})` : '';
        throw new PodflowError('RUN_TIMEOUT', `run ${id} did not finish within ${timeoutMs} ms${last}`);
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.base()}${path}`, {
      method,
      headers: { ...this.headers(), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    if (!response.ok) throw await toError(response);
    return (await response.json()) as T;
  }

  private base(): string {
    return this.options.url.replace(/\/+$/, '');
  }

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.options.apiKey}` };
  }
}

export interface NodeView {
  status: string;
  attempts: number;
  /** On a resumed run, a node kept as it was: the run that produced its result. */
  keptFrom?: string;
  output?: JsonObject;
  files?: { elements: Array<{ name: string; path: string; size: number; content_type: string; sha256: string; download_url: string; expires_at: string }> };
  error?: { code: string; message: string; nodeId?: string; type?: string; stack?: string };
  logs?: { stdout: string; stderr: string; truncated: boolean };
  warnings?: string[];
  /** ISO times: made ready (queued), started and finished, as the coordinator recorded them. */
  timings?: { queuedAt?: string; startedAt?: string; finishedAt?: string; durationMs?: number };
}

export interface RunView {
  id: string;
  status: string;
  workflowId: string;
  /** Set on a run started by `resumeRun`: the run it resumes. */
  resumedFrom?: string;
  /** Set on a test run (`testNode`): the node under test, and the run its upstream values came from. */
  test?: { nodeId: string; upstreamFrom?: string };
  /** Set on an agent tool call's run: the tool's name (`execute-python`, ...). */
  tool?: string;
  inputs: JsonObject;
  outputs: JsonObject | null;
  error?: { code: string; message: string; nodeId?: string; type?: string; stack?: string };
  nodes: Record<string, NodeView>;
  /** Nodes in the workflow; `nodes` holds one page of them. */
  nodesTotal: number;
  /** Set when more nodes follow: pass it as `nodeCursor`. */
  nextNodeCursor?: string;
}

/** Causes of a failed fetch that a coordinator being replaced produces: worth another poll. */
const TRANSIENT_CAUSES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED']);

/**
 * fetch rejects with a TypeError "fetch failed" when no HTTP answer came back; its cause says why.
 * Only a refused, reset or closed connection counts as transient: a name that does not resolve or
 * a TLS error is a configuration problem and fails at once. Checked by name: the error may come
 * from another realm (a VM context, Jest).
 */
function isNetworkError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || (error as Error).name !== 'TypeError' || (error as Error).message !== 'fetch failed') return false;
  const code = ((error as Error).cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && TRANSIENT_CAUSES.has(code);
}

/** Statuses a proxy answers with while no coordinator behind it can. */
const GATEWAY_UNAVAILABLE = new Set([502, 503, 504]);

async function toError(response: Response): Promise<PodflowError> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string; details?: Record<string, unknown> } };
    return new PodflowError(isErrorCode(error.code) ? error.code : 'INTERNAL', error.message, error.details);
  } catch {
    // Not podflow's answer: a proxy or load balancer in front of it (a gateway error during a rolling update is UNAVAILABLE).
    const code = GATEWAY_UNAVAILABLE.has(response.status) ? 'UNAVAILABLE' : 'INTERNAL';
    return new PodflowError(code, `HTTP ${response.status}: ${text.slice(0, 500)}`);
  }
}
