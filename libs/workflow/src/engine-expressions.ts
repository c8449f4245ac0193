import { emptyRecord } from '@podflow/protocol';
import { loadNodes, peekNode, runInputs, type Step } from './engine-context';
import type { ExpressionContext, NodeView } from './expressions';

/**
 * The expression context (`{ inputs, nodes, run }`) holding only the nodes these expressions
 * read (CompiledWorkflow.readsOf), loaded first. An expression that cannot be analysed reads
 * every node, which is what the full context would give it.
 */
export async function contextFor(step: Step, expressions: readonly string[]): Promise<ExpressionContext> {
  const ids = new Set<string>();
  let all = false;
  for (const expression of expressions) {
    const reads = step.compiled.readsOf(expression);
    if (reads === 'all') all = true;
    else for (const id of reads) if (step.compiled.nodesById.has(id)) ids.add(id);
  }
  const read = all ? step.compiled.nodeIds : [...ids];
  await loadNodes(step, read);
  // Without a prototype, `nodes.constructor` or `nodes.__proto__` is a node id like any other.
  const nodes = emptyRecord<NodeView>();
  for (const id of read) {
    const node = peekNode(step, id);
    const view: NodeView = { status: node.status };
    if (node.output !== undefined) view.output = node.output;
    if (node.files !== undefined) view.files = node.files;
    if (node.error !== undefined) view.error = node.error;
    nodes[id] = view;
  }
  return { inputs: await runInputs(step), nodes, run: { id: step.run.id, tenant: step.run.tenantId } };
}
