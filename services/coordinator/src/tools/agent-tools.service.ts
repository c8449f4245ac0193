import { Injectable } from '@nestjs/common';
import { PodflowError, type JsonObject, type NodeError } from '@podflow/protocol';
import { bindingsForArgs } from '../runs/args-bindings';
import { RunsService } from '../runs/runs.service';
import { RunEventsService } from '../streams/run-events.service';
import { StreamLimiter } from '../streams/stream-limiter';
import { compileResultSchema, resultProblem } from './result-schema';
import { TOOL_LANGUAGES, toolInputSchema, type ToolName, type ToolOutput } from './tool-specs';

/** Node id of the single node a tool call runs. */
const NODE_ID = 'main';
/** Extra wait beyond the node timeout, for queueing and sandbox start. */
const WAIT_MARGIN_MS = 60_000;

/**
 * Agent tool calls (issue 15): each runs one snippet as a one-node run, like `POST /v1/executions`
 * (the tenant's limits, rate, dependency lists and egress grants apply; a fresh sandbox per call),
 * except that main may return any JSON value and the value may be checked against a JSON Schema
 * the caller gives. Served by the MCP server (mcp.controller.ts) and plain HTTP (tools.controller.ts).
 */
@Injectable()
export class AgentToolsService {
  constructor(
    private readonly runs: RunsService,
    private readonly events: RunEventsService,
    private readonly limiter: StreamLimiter,
  ) {}

  /**
   * Runs the call and waits for it. A failure of the code is a result (`ok: false`, with the error
   * the agent can fix); a call that cannot start is a PodflowError (4xx: bad arguments, a schema
   * that does not compile, limits).
   */
  async call(tenantId: string, apiKeyId: string, tool: ToolName, rawInput: unknown, signal?: AbortSignal): Promise<ToolOutput> {
    const parsed = toolInputSchema.safeParse(rawInput ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new PodflowError('BAD_REQUEST', `${tool}: ${issue.path.length > 0 ? issue.path.join('.') : 'arguments'}: ${issue.message}`);
    }
    const input = parsed.data;
    // Before anything runs: a schema that cannot be checked is the caller's to fix.
    const validate = input.resultSchema ? compileResultSchema(input.resultSchema) : undefined;
    // The caller's own object (JSON.parse keeps a "__proto__" key as an own key; the parsed copy would not).
    const raw = (rawInput as { args?: unknown } | null | undefined)?.args;
    const args = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as JsonObject;
    const bindings = bindingsForArgs(args, tool);
    const release = this.limiter.acquire(apiKeyId, `agent tool call (${tool})`);
    try {
      const { id, workflow } = await this.runs.submit(
        tenantId,
        {
          workflow: {
            id: tool,
            nodes: [{ id: NODE_ID, language: TOOL_LANGUAGES[tool], code: input.code, inputs: bindings, dependencies: input.dependencies ?? [], ...(input.timeout !== undefined ? { timeout: input.timeout } : {}) }],
          },
          inputs: args,
        },
        // Any JSON value back (the runner reports it as { value }).
        { shape: (defined) => ({ workflow: { ...defined, nodes: defined.nodes.map((node) => ({ ...node, returnAny: true })) }, keep: { kept: new Map(), tool } }) },
      );
      const node = workflow.nodes[0]!;
      await this.events.waitUntilFinished(id, node.timeoutMs * (node.retries.max + 1) + WAIT_MARGIN_MS, signal);
      const { nodes } = await this.runs.snapshot(tenantId, id, { nodes: [NODE_ID] });
      const state = nodes[0]?.[1];
      const logs = state?.logs ?? { stdout: '', stderr: '', truncated: false };
      const base = { stdout: logs.stdout, stderr: logs.stderr, files: (state?.files?.elements ?? []).map(({ path, size, content_type, sha256, download_url, expires_at }) => ({ path, size, content_type, sha256, download_url, expires_at })), runId: id };
      const durationMs = state?.timings.startedAt && state.timings.finishedAt ? state.timings.finishedAt - state.timings.startedAt : undefined;
      if (state?.status !== 'succeeded') {
        const error: NodeError = state?.error ?? { code: 'EXECUTION_TIMEOUT', message: `the call was not answered within its node timeout plus a minute for queueing (run ${id} goes on; cancel it with POST /v1/runs/${id}/cancel)` };
        return { ok: false, error: { code: error.code, message: error.message, ...(error.type ? { type: error.type } : {}), ...(error.stack ? { stack: error.stack } : {}) }, ...base, ...(durationMs !== undefined ? { durationMs } : {}) };
      }
      const value = (state.output as { value?: unknown } | undefined)?.value ?? null;
      const problem = validate ? resultProblem(validate, value) : undefined;
      if (problem) return { ok: false, error: { code: 'OUTPUT_INVALID', message: problem.message, path: problem.path }, ...base, ...(durationMs !== undefined ? { durationMs } : {}) };
      return { ok: true, result: value, ...base, ...(durationMs !== undefined ? { durationMs } : {}) };
    } finally {
      release();
    }
  }
}
