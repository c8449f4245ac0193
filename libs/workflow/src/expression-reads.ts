import { compileExpression } from './expressions';

/** The node ids an expression reads from `nodes`, or `'all'` when that cannot be told from its text. */
export type NodeReads = ReadonlySet<string> | 'all';

type AstNode = { type?: string; value?: unknown; steps?: AstNode[]; stages?: unknown; procedure?: AstNode; [key: string]: unknown };

/**
 * Which nodes an expression can see, so a transition loads only those records instead of the
 * whole run. Conservative: `nodes.<id>` (a path whose first step is `nodes` and second a plain
 * name) reads that one node; anything else that touches `nodes` as a whole (`nodes.*`,
 * `nodes[...]`, `$lookup(nodes, x)`, a variable bound to `nodes`), the context root (`$`, `$$`)
 * or `$eval` reads every node. Reading too much only costs time; reading too little would change
 * what the expression sees, which this never does: every way to reach a node's value from the
 * context root goes through one of these forms.
 */
export function nodeReadsOf(expression: string): NodeReads {
  const reads = new Set<string>();
  let all = false;
  const visit = (value: unknown): void => {
    if (all || typeof value !== 'object' || value === null) return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    const node = value as AstNode;
    if (node.type === 'variable' && (node.value === '' || node.value === '$' || node.value === 'eval')) {
      all = true;
      return;
    }
    if (node.type === 'path' && Array.isArray(node.steps)) {
      const [first, second] = node.steps;
      if (first?.type === 'name' && first.value === 'nodes') {
        if (first.stages !== undefined || second?.type !== 'name' || typeof second.value !== 'string') {
          all = true;
          return;
        }
        reads.add(second.value);
        // The steps after `nodes.<id>` may hold predicates or blocks that read more.
        visit(second.stages);
        for (const step of node.steps.slice(2)) visit(step);
        return;
      }
    }
    for (const [key, child] of Object.entries(node)) {
      if (key !== 'position') visit(child);
    }
  };
  visit(compileExpression(expression).ast());
  return all ? 'all' : reads;
}
