import { PodflowError } from '@podflow/protocol';
import { CompiledWorkflow } from './compiled-workflow';
import { InvalidWorkflowError } from './errors';
import { codeProblem } from './schema';
import { DEFAULT_WORKFLOW_LIMITS, type Workflow, type WorkflowLimits } from './types';

/** What a test run records about itself (RunRecord `test`). */
export interface TestRunInfo {
  /** The node under test. */
  nodeId: string;
  /** The run its upstream values come from, when one was used (else only sample values). */
  upstreamFrom?: string;
}

/**
 * The definition a test run of one node executes (`POST /v1/workflows/:id/nodes/:nodeId/test`):
 * the node, its code replaced by `code` when given (the builder's unsaved edit, checked like any
 * code), and every node it depends on, with the edges among them. Nothing downstream runs, and the
 * workflow's `output` expression is dropped (it may read nodes that are not there): the run's
 * outputs are the node's. Edges into the node become plain `always` edges: a test run runs the node
 * whatever its upstream did, so a node on an error branch or behind a `when` can be tried too.
 * `upstream`: the node's ancestors, in definition order; the caller starts the run with all of them
 * kept (resume.ts `KeptNode`), so only the node itself runs.
 * @throws PodflowError NOT_FOUND for a node the workflow does not have; InvalidWorkflowError for bad `code`.
 */
export function testRunDefinition(workflow: Workflow, nodeId: string, code?: string, limits: Pick<WorkflowLimits, 'maxCodeBytes'> = DEFAULT_WORKFLOW_LIMITS): { workflow: Workflow; upstream: string[] } {
  const compiled = new CompiledWorkflow(workflow);
  if (!compiled.nodesById.has(nodeId)) {
    const known = compiled.nodeIds.slice(0, 20).map((id) => JSON.stringify(id));
    throw new PodflowError('NOT_FOUND', `workflow "${workflow.id}" has no node ${JSON.stringify(nodeId)} (its nodes: ${known.join(', ')}${compiled.nodeIds.length > 20 ? ', ...' : ''})`);
  }
  if (code !== undefined) {
    const problem = codeProblem(code, limits);
    if (problem) throw new InvalidWorkflowError([{ path: 'code', where: `node "${nodeId}"`, message: problem }], workflow.id);
  }
  const upstream = compiled.ancestorsOf(nodeId);
  const included = new Set([...upstream, nodeId]);
  const nodes = workflow.nodes.filter((node) => included.has(node.id)).map((node) => (node.id === nodeId && code !== undefined ? { ...node, code } : node));
  const edges = workflow.edges
    .filter((edge) => included.has(edge.from) && included.has(edge.to))
    .map((edge) => (edge.to === nodeId ? { from: edge.from, to: edge.to, on: 'always' as const } : edge));
  const { output: _output, ...rest } = workflow;
  return { workflow: { ...rest, nodes, edges }, upstream };
}
