/** Graph helpers shared by validation and the engine. Edges are referred to by their index. */

export interface EdgeLike {
  from: string;
  to: string;
}

export interface EdgeIndex {
  /** Node id → indexes of edges ending there, in definition order. */
  incoming: Map<string, number[]>;
  /** Node id → indexes of edges starting there, in definition order. */
  outgoing: Map<string, number[]>;
}

/** Builds the incoming/outgoing lists once per transition; edge order is kept because it is meaningful. */
export function indexEdges(edges: readonly EdgeLike[]): EdgeIndex {
  const incoming = new Map<string, number[]>();
  const outgoing = new Map<string, number[]>();
  edges.forEach((edge, index) => {
    push(outgoing, edge.from, index);
    push(incoming, edge.to, index);
  });
  return { incoming, outgoing };
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Every node with a path to `nodeId` (over edges of any kind), excluding the node itself. */
export function ancestorsOf(nodeId: string, edges: readonly EdgeLike[], index: EdgeIndex = indexEdges(edges)): Set<string> {
  const seen = new Set<string>();
  const stack = [nodeId];
  while (stack.length > 0) {
    const current = stack.pop() as string;
    for (const edgeIndex of index.incoming.get(current) ?? []) {
      const parent = edges[edgeIndex].from;
      if (!seen.has(parent) && parent !== nodeId) {
        seen.add(parent);
        stack.push(parent);
      }
    }
  }
  return seen;
}

export interface Cycle {
  /** Node ids around the cycle, first repeated at the end: `a → b → c → a`. */
  path: string[];
  /** The edge that closes the cycle. */
  edgeIndex: number;
}

/**
 * Cycles found by depth-first search, one per closing edge, deduplicated by node set so a user
 * sees each loop once. Iterative, because definitions may hold up to `maxNodes` nodes in a chain.
 */
export function findCycles(nodeIds: readonly string[], edges: readonly EdgeLike[]): Cycle[] {
  const { outgoing } = indexEdges(edges);
  const state = new Map<string, 'open' | 'done'>();
  const cycles: Cycle[] = [];
  const seenSets = new Set<string>();
  for (const root of nodeIds) {
    if (state.has(root)) continue;
    const path: string[] = [root];
    const cursors: number[] = [0];
    state.set(root, 'open');
    while (path.length > 0) {
      const current = path[path.length - 1];
      const out = outgoing.get(current) ?? [];
      const cursor = cursors[cursors.length - 1];
      if (cursor >= out.length) {
        state.set(current, 'done');
        path.pop();
        cursors.pop();
        continue;
      }
      cursors[cursors.length - 1] = cursor + 1;
      const edgeIndex = out[cursor];
      const next = edges[edgeIndex].to;
      const seen = state.get(next);
      if (seen === 'open') {
        const loop = [...path.slice(path.indexOf(next)), next];
        const key = [...new Set(loop)].sort().join('\u0000');
        if (!seenSets.has(key)) {
          seenSets.add(key);
          cycles.push({ path: loop, edgeIndex });
        }
      } else if (seen === undefined) {
        state.set(next, 'open');
        path.push(next);
        cursors.push(0);
      }
    }
  }
  return cycles;
}
