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
  // The values are copies: the records are the source's own (the coordinator caches them), and
  // JSONata writes onto values it is given (calling an object adds `token` to it, `x[]` adds
  // `keepSingleton` to the array).
  const nodes = emptyRecord<NodeView>();
  for (const id of read) {
    const node = peekNode(step, id);
    const view: NodeView = { status: node.status };
    if (node.output !== undefined) view.output = structuredClone(node.output);
    if (node.files !== undefined) view.files = structuredClone(node.files);
    if (node.error !== undefined) view.error = structuredClone(node.error);
    nodes[id] = view;
  }
  return { inputs: structuredClone(await runInputs(step)), nodes, run: { id: step.run.id, tenant: step.run.tenantId } };
}
