import type { Language } from '@podflow/protocol';
import * as z from 'zod/v4';

/**
 * The agent tools (issue 15): one per language, each running a snippet in a fresh sandbox with
 * the tenant's limits. Described once, here, as zod shapes: the MCP server registers them as they
 * are (the SDK turns them into JSON Schema) and `GET /v1/tools` lists the same JSON Schemas.
 */
export const TOOL_LANGUAGES = { 'execute-python': 'python', 'execute-javascript': 'javascript', 'execute-typescript': 'typescript' } as const satisfies Record<string, Language>;
export type ToolName = keyof typeof TOOL_LANGUAGES;

export const MAIN_HINT: Record<Language, string> = {
  python: 'def main(args):\n    return [x * 2 for x in args["numbers"]]',
  javascript: 'function main(args) {\n  return args.numbers.map((x) => x * 2);\n}',
  typescript: 'function main(args: { numbers: number[] }): number[] {\n  return args.numbers.map((x) => x * 2);\n}',
};

/** Arguments of every tool. */
export const toolInput = {
  code: z.string().describe('The source: it defines main(args) and returns any JSON value (object, array, string, number, boolean or null).'),
  // Checked here, but AgentToolsService passes the caller's own object on: z.record drops a "__proto__" key.
  args: z.record(z.string(), z.unknown()).optional().describe('The object main receives (JSON). Default {}.'),
  dependencies: z.array(z.string()).optional().describe('Packages to install first (PyPI specs for Python, npm specs otherwise), within the tenant\'s allowed lists.'),
  timeout: z.string().optional().describe('How long the code may run, e.g. "30s" (default 60s, at most the tenant\'s limit).'),
  resultSchema: z.record(z.string(), z.unknown()).optional().describe('A JSON Schema the returned value must match; a value that does not is OUTPUT_INVALID naming the path, so the code can be fixed.'),
};
export const toolInputSchema = z.object(toolInput).strict();
export type ToolInput = z.infer<typeof toolInputSchema>;

const file = z.object({ path: z.string(), size: z.number(), content_type: z.string(), sha256: z.string(), download_url: z.string(), expires_at: z.string() });

/** The result of every tool: `isError` in MCP when `ok` is false. */
export const toolOutput = {
  ok: z.boolean().describe('true when main returned a value (that matched resultSchema, when given)'),
  result: z.unknown().optional().describe('What main returned (any JSON value), when ok.'),
  error: z
    .object({ code: z.string(), message: z.string(), path: z.string().optional(), type: z.string().optional(), stack: z.string().optional() })
    .optional()
    .describe('Why not, when not ok: CODE_EXECUTION_FAILED (with the stack), TIMEOUT, OUTPUT_INVALID (path: where the value broke resultSchema), ...'),
  stdout: z.string(),
  stderr: z.string(),
  files: z.array(file).describe('Files the code wrote under its working directory, in written order, with download URLs.'),
  runId: z.string().describe('The run that executed the call (GET /v1/runs/:id).'),
  durationMs: z.number().optional(),
};
export const toolOutputSchema = z.object(toolOutput);
export type ToolOutput = z.infer<typeof toolOutputSchema>;

export function toolDescription(name: ToolName): string {
  const language = TOOL_LANGUAGES[name];
  return `Run ${language === 'python' ? 'Python 3' : language === 'typescript' ? 'TypeScript' : 'JavaScript (Node.js 20)'} code in a fresh, isolated sandbox (no network unless granted, no secrets; nothing survives the call). The code defines main(args) and returns any JSON value; stdout, stderr and written files come back with it. Example:\n${MAIN_HINT[language]}`;
}

/** The tools as `GET /v1/tools` lists them: JSON Schemas of their arguments and results. */
export function toolList(): Array<{ name: ToolName; description: string; inputSchema: unknown; outputSchema: unknown }> {
  return (Object.keys(TOOL_LANGUAGES) as ToolName[]).map((name) => ({
    name,
    description: toolDescription(name),
    inputSchema: z.toJSONSchema(toolInputSchema),
    outputSchema: z.toJSONSchema(toolOutputSchema),
  }));
}

export function isToolName(name: string): name is ToolName {
  return Object.prototype.hasOwnProperty.call(TOOL_LANGUAGES, name);
}
