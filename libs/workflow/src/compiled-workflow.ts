import { indexEdges, type EdgeIndex } from './graph';
import { nodeReadsOf, type NodeReads } from './expression-reads';
import type { CodeNode, Workflow } from './types';

/**
 * A validated definition prepared once for every run that uses it: the edge index, node
 * positions, roots and leaves, and (lazily) which nodes each expression reads. Runs reference a
 * definition by content hash; the coordinator keeps these in memory per hash, so no transition
 * rebuilds them and no run state carries a copy of the definition.
 */
export class CompiledWorkflow {
  readonly nodesById: ReadonlyMap<string, CodeNode>;
  /** Node id → position in `workflow.nodes`: the order every scan of nodes follows. */
  readonly position: ReadonlyMap<string, number>;
  readonly edges: EdgeIndex;
  /** Nodes without incoming edges, in definition order. */
  readonly roots: readonly string[];
  /** Nodes without outgoing edges, in definition order. */
  readonly leaves: readonly string[];
  private readonly reads = new Map<string, NodeReads>();

  constructor(
    readonly workflow: Workflow,
    /** Content hash of the definition (the coordinator's key for it); empty when not stored. */
    readonly hash = '',
  ) {
    this.nodesById = new Map(workflow.nodes.map((node) => [node.id, node]));
    this.position = new Map(workflow.nodes.map((node, index) => [node.id, index]));
    this.edges = indexEdges(workflow.edges);
    this.roots = workflow.nodes.filter((node) => !this.edges.incoming.has(node.id)).map((node) => node.id);
    this.leaves = workflow.nodes.filter((node) => !this.edges.outgoing.has(node.id)).map((node) => node.id);
  }

  get nodeIds(): string[] {
    return this.workflow.nodes.map((node) => node.id);
  }

  node(nodeId: string): CodeNode {
    const node = this.nodesById.get(nodeId);
    if (!node) throw new Error(`workflow ${this.workflow.id} has no node "${nodeId}"`);
    return node;
  }

  incoming(nodeId: string): readonly number[] {
    return this.edges.incoming.get(nodeId) ?? [];
  }

  outgoing(nodeId: string): readonly number[] {
    return this.edges.outgoing.get(nodeId) ?? [];
  }

  /** Nodes an expression reads (nodeReadsOf), computed once per expression text. */
  readsOf(expression: string): NodeReads {
    let reads = this.reads.get(expression);
    if (!reads) {
      reads = nodeReadsOf(expression);
      this.reads.set(expression, reads);
    }
    return reads;
  }

  /** Every node with a path to `nodeId`, in definition order (the order `args.nodes` keeps). */
  ancestorsOf(nodeId: string): string[] {
    const seen = new Set<string>();
    const stack = [nodeId];
    while (stack.length > 0) {
      const current = stack.pop() as string;
      for (const index of this.incoming(current)) {
        const parent = this.workflow.edges[index].from;
        if (!seen.has(parent) && parent !== nodeId) {
          seen.add(parent);
          stack.push(parent);
        }
      }
    }
    return [...seen].sort((a, b) => this.position.get(a)! - this.position.get(b)!);
  }
}
