import type { ValidationIssue } from './types';

/** Most input bindings one node may have; a larger map is passed as one binding's value. */
export const MAX_BINDINGS_PER_NODE = 1_000;
/** Most distinct expression texts one definition may hold (bindings, edge conditions, the output). */
export const MAX_DISTINCT_EXPRESSIONS = 20_000;
/** Most characters of distinct expression text one definition may hold. */
export const MAX_EXPRESSION_TEXT_CHARS = 1_048_576;

type Raw = Record<string, unknown>;

const isRecord = (value: unknown): value is Raw => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Counts a raw definition's expressions before any is parsed. Each distinct text is parsed at
 * validation (40-350 µs each here, ~0.3-2 µs per character) on the coordinator's event loop, and
 * nothing else bounded how many a definition could hold: 100,000 bindings in a 1.3 MB request held
 * every tenant's requests for 19 s (a red-team finding). Identical texts are parsed once per
 * validation (withSyntaxMemo), so a 10,000-node fan-out binding the same expression in every node
 * costs one. Within these bounds validation parses for at most about a second.
 */
export function expressionVolumeIssues(raw: Raw, top: string): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const distinct = new Set<string>();
  let chars = 0;
  const add = (text: unknown) => {
    if (typeof text !== 'string' || distinct.has(text)) return;
    distinct.add(text);
    chars += text.length;
  };
  const nodes = Array.isArray(raw.nodes) ? raw.nodes : [];
  nodes.forEach((node: unknown, index) => {
    if (!isRecord(node) || !isRecord(node.inputs)) return;
    const names = Object.keys(node.inputs);
    if (names.length > MAX_BINDINGS_PER_NODE) {
      const where = typeof node.id === 'string' ? `node "${node.id}"` : `nodes[${index}]`;
      issues.push({
        where,
        path: `nodes[${index}].inputs`,
        message: `has ${names.length} input bindings; the limit is ${MAX_BINDINGS_PER_NODE}: bind one larger value (an object of them) instead of each item`,
      });
      return;
    }
    for (const name of names) add(node.inputs[name]);
  });
  for (const edge of Array.isArray(raw.edges) ? raw.edges : []) if (isRecord(edge)) add(edge.when);
  add(raw.output);
  if (distinct.size > MAX_DISTINCT_EXPRESSIONS || chars > MAX_EXPRESSION_TEXT_CHARS) {
    issues.push({
      where: top,
      path: '(root)',
      message: `holds ${distinct.size} distinct expressions of ${chars} characters in all; the limits are ${MAX_DISTINCT_EXPRESSIONS} expressions and ${MAX_EXPRESSION_TEXT_CHARS} characters (each is parsed when the definition is checked): share expressions between nodes, or compute in a node`,
    });
  }
  return issues;
}
