import { compileJsonSchema } from './json-schema';
import { LANGUAGES, ownValue, type Language } from '@podflow/protocol';
import type { ZodIssue } from 'zod';
import { parseDependencies, parseDependency } from './dependencies';
import { loadDefinitionText, type LoadedSource } from './definition-source';
import { checkDependencyPolicy, type DependencyPolicy } from './dependency-policy';
import { InvalidWorkflowError } from './errors';
import { findCycles, type EdgeLike } from './graph';
import { DEFAULT_RETRY_DELAY_MS, KNOWN_FIELDS, REQUIRED_HINTS, workflowSchema, type RawWorkflow } from './schema';
import { didYouMean, resetSuggestions } from './suggest';
import { DEFAULT_WORKFLOW_LIMITS } from './types';
import type { CodeNode, ValidationIssue, Workflow, WorkflowLimits } from './types';
import { expressionVolumeIssues } from './expression-volume';
import { withSyntaxMemo } from './expressions';

/** Outcome of validating one definition: the normalised workflow, or every issue found. */
export interface ValidationResult {
  workflow?: Workflow;
  issues: ValidationIssue[];
  /** The definition's `id` when it had a readable one, for messages. */
  workflowId?: string;
}

/** What the caller adds to the rules of the definition itself. */
export interface ValidateOptions {
  /**
   * Allow/deny lists every declared package must pass, e.g. the operator's and the tenant's.
   * All apply: a package is refused if any list denies it or any non-empty allow list lacks it.
   */
  dependencyPolicies?: readonly DependencyPolicy[];
}

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a definition (YAML or JSON text, or an already-parsed object) without throwing.
 * Structural checks (zod) and graph checks (ids, endpoints, cycles) both run, so one pass
 * reports everything that is wrong.
 */
export function validateWorkflow(source: string | object, limits: WorkflowLimits = DEFAULT_WORKFLOW_LIMITS, options: ValidateOptions = {}): ValidationResult {
  // Each distinct expression text is parsed once, however often the definition repeats it.
  return withSyntaxMemo(() => validateOnce(source, limits, options));
}

function validateOnce(source: string | object, limits: WorkflowLimits, options: ValidateOptions): ValidationResult {
  resetSuggestions();
  const loaded = loadSource(source);
  if (loaded.issues.length > 0) return { issues: loaded.issues };
  const raw = loaded.value;
  if (!isRecord(raw)) {
    return { issues: [{ where: 'workflow', path: '(root)', message: 'must be a mapping with at least `id` and `nodes`' }] };
  }
  const workflowId = typeof raw.id === 'string' ? raw.id : undefined;
  // Counted before anything is parsed: parsing is what these bound.
  const volume = expressionVolumeIssues(raw, workflowId ? `workflow "${workflowId}"` : 'workflow');
  if (volume.length > 0) return { issues: volume, workflowId };
  const parsed = workflowSchema(limits).safeParse(raw);
  const issues = parsed.success ? [] : parsed.error.issues.flatMap((issue) => describeZodIssue(issue, raw));
  issues.push(...checkGraph(raw, limits), ...checkDependencies(raw, options.dependencyPolicies ?? []), ...checkInputTypes(raw));
  if (issues.length > 0 || !parsed.success) return { issues, workflowId };
  return { workflow: normalise(parsed.data, limits), issues: [], workflowId };
}

/**
 * Parses and validates a definition: YAML or JSON text (YAML syntax errors carry line and
 * column) or an object. Returns the normalised workflow: durations in ms, defaults applied.
 * @throws InvalidWorkflowError listing every issue.
 */
export function parseWorkflow(source: string | object, limits: WorkflowLimits = DEFAULT_WORKFLOW_LIMITS, options: ValidateOptions = {}): Workflow {
  const result = validateWorkflow(source, limits, options);
  if (!result.workflow) throw new InvalidWorkflowError(result.issues, result.workflowId);
  return result.workflow;
}

function loadSource(source: string | object): LoadedSource {
  return typeof source === 'string' ? loadDefinitionText(source) : { value: source, issues: [] };
}

/** `nodes[2].inputs.rows`; keys that are not identifiers are quoted: `inputs["a b"]`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out || '(root)';
}

/** `node "report"`, `edge load→report`, or `workflow "id"`, from the raw definition. */
function whereOf(path: readonly (string | number)[], raw: Raw): string {
  const [section, index] = path;
  if (typeof index === 'number' && Array.isArray(raw[section as string])) {
    const item: unknown = (raw[section as string] as unknown[])[index];
    if (section === 'nodes') return isRecord(item) && typeof item.id === 'string' ? `node "${item.id}"` : `nodes[${index}]`;
    if (section === 'edges') {
      return isRecord(item) && typeof item.from === 'string' && typeof item.to === 'string' ? `edge ${item.from}→${item.to}` : `edges[${index}]`;
    }
  }
  return typeof raw.id === 'string' ? `workflow "${raw.id}"` : 'workflow';
}

function knownFieldsAt(path: readonly (string | number)[]): readonly string[] {
  if (path.length === 0) return KNOWN_FIELDS.workflow;
  if (path[0] === 'edges') return KNOWN_FIELDS.edge;
  if (path[0] === 'nodes' && path.length === 2) return KNOWN_FIELDS.node;
  if (path[0] === 'nodes' && path[2] === 'retries') return KNOWN_FIELDS.retries;
  if (path[0] === 'nodes' && path[2] === 'resources') return KNOWN_FIELDS.resources;
  return [];
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function isExpressionPath(path: readonly (string | number)[]): boolean {
  return (path[0] === 'nodes' && path[2] === 'inputs') || (path[0] === 'edges' && path[2] === 'when') || (path.length === 1 && path[0] === 'output');
}

function describeZodIssue(issue: ZodIssue, raw: Raw): ValidationIssue[] {
  const where = whereOf(issue.path, raw);
  const path = formatPath(issue.path);
  const last = issue.path[issue.path.length - 1];
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownFieldsAt(issue.path);
      return issue.keys.map((key) => ({
        where,
        path: formatPath([...issue.path, key]),
        message: `unknown field "${key}"${didYouMean(key, known)}; allowed fields: ${known.join(', ')}`,
      }));
    }
    case 'invalid_type': {
      if (issue.received === 'undefined') {
        const hint = typeof last === 'string' && ownValue(REQUIRED_HINTS, last) ? `: ${ownValue(REQUIRED_HINTS, last)}` : '';
        return [{ where, path, message: `is required${hint}` }];
      }
      const hint = isExpressionPath(issue.path) ? ' (a JSONata expression is written as a string; quote it in YAML)' : '';
      return [{ where, path, message: `must be ${article(issue.expected)}, got ${issue.received}${hint}` }];
    }
    case 'invalid_enum_value': {
      const options = issue.options.map(String);
      const suggestion = typeof issue.received === 'string' ? didYouMean(issue.received, options) : '';
      return [{ where, path, message: `must be one of ${options.join(', ')}, got ${JSON.stringify(issue.received)}${suggestion}` }];
    }
    case 'invalid_literal':
      return [{ where, path, message: `must be ${JSON.stringify(issue.expected)} (the only node type), got ${JSON.stringify(issue.received)}` }];
    default:
      return [{ where, path, message: issue.message }];
  }
}

/** The first ten of a list of names, for a message (a definition may hold thousands). */
function listed(names: readonly string[]): string {
  return `${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}`;
}

/** Graph rules over the raw definition, so they report even when some fields are malformed. */
function checkGraph(raw: Raw, limits: WorkflowLimits): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const top = typeof raw.id === 'string' ? `workflow "${raw.id}"` : 'workflow';
  const nodes = Array.isArray(raw.nodes) ? raw.nodes : [];
  if (nodes.length > limits.maxNodes) {
    issues.push({ where: top, path: 'nodes', message: `has ${nodes.length} nodes; the limit is ${limits.maxNodes}: split it into smaller workflows` });
  }
  const firstIndex = new Map<string, number>();
  nodes.forEach((node: unknown, index) => {
    if (!isRecord(node) || typeof node.id !== 'string') return;
    const first = firstIndex.get(node.id);
    if (first === undefined) firstIndex.set(node.id, index);
    else issues.push({ where: `node "${node.id}"`, path: `nodes[${index}].id`, message: `duplicate node id "${node.id}" (already used by nodes[${first}]): node ids must be unique` });
  });
  const ids = [...firstIndex.keys()];
  const graphEdges: EdgeLike[] = [];
  const graphEdgeIndex: number[] = [];
  const seenEdges = new Map<string, number>();
  const edges = Array.isArray(raw.edges) ? raw.edges : [];
  edges.forEach((edge: unknown, index) => {
    if (!isRecord(edge) || typeof edge.from !== 'string' || typeof edge.to !== 'string') return;
    const where = `edge ${edge.from}→${edge.to}`;
    let ok = true;
    for (const end of ['from', 'to'] as const) {
      const target = edge[end] as string;
      if (firstIndex.has(target)) continue;
      ok = false;
      const hint = didYouMean(target, ids) || `; known nodes: ${listed(ids)}`;
      issues.push({ where, path: `edges[${index}].${end}`, message: `unknown node "${target}"${hint}` });
    }
    if (edge.from === edge.to) {
      ok = false;
      issues.push({ where, path: `edges[${index}]`, message: `connects "${edge.from}" to itself: an edge must join two different nodes` });
    }
    const key = `${edge.from}\u0000${edge.to}\u0000${typeof edge.on === 'string' ? edge.on : 'success'}`;
    const duplicateOf = seenEdges.get(key);
    if (duplicateOf !== undefined) {
      ok = false;
      issues.push({ where, path: `edges[${index}]`, message: `duplicates edges[${duplicateOf}] (same from, to and on): remove one of them` });
    } else seenEdges.set(key, index);
    if (ok) {
      graphEdges.push({ from: edge.from, to: edge.to });
      graphEdgeIndex.push(index);
    }
  });
  for (const cycle of findCycles(ids, graphEdges)) {
    const edgeIndex = graphEdgeIndex[cycle.edgeIndex];
    const closing = graphEdges[cycle.edgeIndex];
    issues.push({
      where: `edge ${closing.from}→${closing.to}`,
      path: `edges[${edgeIndex}]`,
      message: `closes the cycle ${cycle.path.join(' → ')}: a workflow must be acyclic; remove or reverse one of these edges`,
    });
  }
  return issues;
}

/** Distinct JSON Schemas one definition may declare as input types (each is compiled when it is validated), and their bytes together. */
export const MAX_INPUT_SCHEMAS = 200;
export const MAX_INPUT_SCHEMA_BYTES = 256 * 1024;

/**
 * `inputTypes` types bindings: each key must name one of the node's `inputs`, and each JSON
 * Schema must compile (json-schema.ts: bounded size, patterns on RE2), at most MAX_INPUT_SCHEMAS
 * distinct ones per definition.
 */
function checkInputTypes(raw: Raw): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const schemas = new Set<string>();
  let schemaBytes = 0;
  const nodes = Array.isArray(raw.nodes) ? raw.nodes : [];
  nodes.forEach((node: unknown, nodeIndex) => {
    if (!isRecord(node) || !isRecord(node.inputTypes)) return;
    const where = typeof node.id === 'string' ? `node "${node.id}"` : `nodes[${nodeIndex}]`;
    const bindings = isRecord(node.inputs) ? Object.keys(node.inputs) : [];
    for (const name of Object.keys(node.inputTypes)) {
      const type = (node.inputTypes as Record<string, unknown>)[name];
      if (isRecord(type)) {
        const path = formatPath(['nodes', nodeIndex, 'inputTypes', name]);
        const text = JSON.stringify(type);
        const bytes = schemas.has(text) ? 0 : Buffer.byteLength(text, 'utf8');
        if (!schemas.has(text) && schemas.size >= MAX_INPUT_SCHEMAS) {
          issues.push({ where, path, message: `is one JSON Schema too many: a definition may declare at most ${MAX_INPUT_SCHEMAS} distinct ones; reuse a schema, or use a type name` });
        } else if (schemaBytes + bytes > MAX_INPUT_SCHEMA_BYTES) {
          issues.push({ where, path, message: `brings the definition's JSON Schemas over ${MAX_INPUT_SCHEMA_BYTES} bytes together; reuse schemas, or make them smaller` });
        } else {
          schemaBytes += bytes;
          schemas.add(text);
          const compiled = compileJsonSchema(type);
          if ('problem' in compiled) issues.push({ where, path, message: `the JSON Schema ${compiled.problem}` });
        }
      }
      if (bindings.includes(name)) continue;
      const fix = bindings.length === 0
        ? 'declare the binding under inputs (types apply to bound inputs only)'
        : `bound inputs: ${listed(bindings)}${didYouMean(name, bindings)}`;
      issues.push({ where, path: formatPath(['nodes', nodeIndex, 'inputTypes', name]), message: `types "${name}", which is not an input of this node; ${fix}` });
    }
  });
  return issues;
}

/**
 * Each declared dependency of each node (with a known language) must parse as a plain package spec,
 * appear once per node, and pass every policy. Runs on the raw definition like checkGraph.
 */
function checkDependencies(raw: Raw, policies: readonly DependencyPolicy[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const nodes = Array.isArray(raw.nodes) ? raw.nodes : [];
  nodes.forEach((node: unknown, nodeIndex) => {
    if (!isRecord(node) || !Array.isArray(node.dependencies) || !(LANGUAGES as readonly unknown[]).includes(node.language)) return;
    const where = typeof node.id === 'string' ? `node "${node.id}"` : `nodes[${nodeIndex}]`;
    // Non-strings are the schema's to report; keep each string's own index for the path.
    const strings = (node.dependencies as unknown[]).flatMap((spec, index) => (typeof spec === 'string' ? [{ spec, index }] : []));
    const issue = (index: number, message: string): ValidationIssue => ({ where, path: `nodes[${nodeIndex}].dependencies[${index}]`, message, code: 'INVALID_DEPENDENCY' });
    const { dependencies, problems } = parseDependencies(node.language as Language, strings.map((s) => s.spec));
    for (const problem of problems) issues.push(issue(strings[problem.index]!.index, problem.message));
    for (const dependency of dependencies) {
      const refusal = checkDependencyPolicy(dependency, policies);
      if (refusal) issues.push(issue(strings.find((s) => s.spec === dependency.raw)!.index, refusal.message));
    }
  });
  return issues.sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
}

/**
 * Policy refusals for an already validated workflow (a registered version, re-checked when a run
 * starts so that a list tightened since registration applies). Specs are the canonical ones.
 */
export function dependencyPolicyIssues(workflow: Workflow, policies: readonly DependencyPolicy[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  workflow.nodes.forEach((node, nodeIndex) => {
    node.dependencies.forEach((spec, index) => {
      const parsed = parseDependency(node.language, spec);
      const refusal = parsed.ok ? checkDependencyPolicy(parsed.dependency, policies) : parsed.problem;
      if (refusal) issues.push({ where: `node "${node.id}"`, path: `nodes[${nodeIndex}].dependencies[${index}]`, message: refusal.message, code: 'INVALID_DEPENDENCY' });
    });
  });
  return issues;
}

/** The installer gets the canonical spec (`python-dateutil<3,>=2.8`), in declaration order. */
function canonicalDependencies(language: Language, specs: readonly string[]): string[] {
  return specs.map((spec) => {
    const parsed = parseDependency(language, spec);
    return parsed.ok ? parsed.dependency.spec : spec;
  });
}

function normalise(data: RawWorkflow, limits: WorkflowLimits): Workflow {
  const workflow: Workflow = {
    id: data.id,
    nodes: data.nodes.map((node) => normaliseNode(node, limits)),
    edges: data.edges.map((edge) => ({ from: edge.from, to: edge.to, on: edge.on, ...(edge.when !== undefined ? { when: edge.when } : {}) })),
    timeoutMs: data.timeout ?? Math.min(limits.defaultRunTimeoutMs, limits.maxRunTimeoutMs),
  };
  if (data.name !== undefined) workflow.name = data.name;
  if (data.description !== undefined) workflow.description = data.description;
  if (data.output !== undefined) workflow.output = data.output;
  return workflow;
}

function normaliseNode(node: RawWorkflow['nodes'][number], limits: WorkflowLimits): CodeNode {
  const out: CodeNode = {
    id: node.id,
    type: 'code',
    language: node.language,
    code: node.code,
    dependencies: canonicalDependencies(node.language, node.dependencies),
    timeoutMs: node.timeout ?? Math.min(limits.defaultNodeTimeoutMs, limits.maxNodeTimeoutMs),
    retries: {
      max: node.retries?.max ?? 0,
      backoff: node.retries?.backoff ?? 'exponential',
      delayMs: node.retries?.delay ?? DEFAULT_RETRY_DELAY_MS,
    },
    network: node.network,
  };
  if (node.inputs !== undefined) out.inputs = node.inputs;
  if (node.inputTypes !== undefined) out.inputTypes = node.inputTypes;
  if (node.resources !== undefined && (node.resources.cpu !== undefined || node.resources.memory !== undefined)) {
    out.resources = {
      ...(node.resources.cpu !== undefined ? { cpu: node.resources.cpu } : {}),
      ...(node.resources.memory !== undefined ? { memory: node.resources.memory } : {}),
    };
  }
  if (node.outputs !== undefined) out.outputs = node.outputs;
  return out;
}
