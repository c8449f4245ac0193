import { MAX_JSON_DEPTH, findTooDeep } from '@podflow/protocol';
import { Lexer, LineCounter, isMap, isScalar, parseDocument, visit, type Document } from 'yaml';
import type { ValidationIssue } from './types';

/**
 * Most YAML tokens (scalars, indicators, indentation, line breaks) a definition may hold. The
 * largest valid workflow (1000 nodes with inputs and edges) lexes to about 50,000; composing a
 * document costs memory and time per token (a 1 MiB flow sequence of numbers is 1.5 million
 * tokens and about 400 MB), so the count is checked with the lexer, which keeps nothing, before
 * anything is built.
 */
export const MAX_DEFINITION_TOKENS = 100_000;

/** The alias cap stops "billion laughs" documents from expanding into gigabytes. */
const MAX_ALIAS_COUNT = 100;

/** What a definition's text became: a value, or the issues that stopped it, with line and column. */
export interface LoadedSource {
  value?: unknown;
  issues: ValidationIssue[];
}

/**
 * Parses definition text (YAML, of which JSON is a subset) within bounds that hold for hostile
 * input: at most MAX_DEFINITION_TOKENS tokens, duplicate keys found in one pass (the YAML
 * library's own check compares every key with every other: a 100,000-key mapping took minutes),
 * nesting at most MAX_JSON_DEPTH levels below the definition, and bounded alias expansion.
 */
export function loadDefinitionText(source: string): LoadedSource {
  if (source.trim() === '') {
    return { issues: [issue('(source)', 'is empty: write a YAML or JSON definition with `id` and `nodes`')] };
  }
  let tokens = 0;
  for (const _token of new Lexer().lex(source)) {
    if (++tokens > MAX_DEFINITION_TOKENS) {
      return {
        issues: [
          issue('(source)', `has more than ${MAX_DEFINITION_TOKENS} YAML tokens, far more than the largest valid workflow needs; pass large data as run inputs or files, not in the definition`),
        ],
      };
    }
  }
  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: false });
  } catch (error) {
    // The YAML parser recurses: a document nested thousands of levels deep overflows the stack.
    return { issues: [issue('(source)', `cannot be parsed: ${(error as Error).message}; is it nested that deeply on purpose?`)] };
  }
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  if (doc.errors.length > 0) {
    return { issues: doc.errors.map((error) => issue(at(error.pos[0]), `YAML syntax error: ${error.message}`)) };
  }
  const duplicates = duplicateKeys(doc);
  if (duplicates.length > 0) {
    return { issues: duplicates.map(({ key, offset }) => issue(at(offset), `YAML syntax error: Map keys must be unique; "${key.slice(0, 64)}" is repeated`)) };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    return { issues: [issue('(source)', `cannot be loaded: ${(error as Error).message}`)] };
  }
  // The definition is the outer level, as in a request body: its fields may nest MAX_JSON_DEPTH levels.
  const tooDeep = findTooDeep(value, MAX_JSON_DEPTH + 1, '');
  if (tooDeep !== undefined) {
    const path = tooDeep.replace(/^\./, '');
    const shown = path.length > 80 ? `${path.slice(0, 80)}…` : path;
    return { issues: [issue(shown, `nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays; no field of a definition needs that`)] };
  }
  return { value, issues: [] };
}

/** Keys repeated within one mapping, in document order; each mapping's keys are compared through a Set. */
function duplicateKeys(doc: Document.Parsed): Array<{ key: string; offset: number }> {
  const found: Array<{ key: string; offset: number }> = [];
  visit(doc, {
    Map(_key, map) {
      if (!isMap(map)) return;
      const seen = new Set<string>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? `${typeof pair.key.value}:${String(pair.key.value)}` : `node:${String(pair.key)}`;
        if (seen.has(key)) {
          const node = pair.key as { range?: [number, number, number] } | null;
          found.push({ key: key.slice(key.indexOf(':') + 1), offset: node?.range?.[0] ?? 0 });
        }
        seen.add(key);
      }
    },
  });
  return found.sort((a, b) => a.offset - b.offset);
}

function issue(path: string, message: string): ValidationIssue {
  return { where: 'workflow', path, message };
}
