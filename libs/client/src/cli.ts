#!/usr/bin/env node
/* eslint-disable no-console -- the CLI's output is its user interface */
import { PodflowError, type RunEventMessage } from '@podflow/protocol';
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PodflowClient, type RunView } from './http-client';
import { parseKeyValue } from './key-value';

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

function clientFrom(options: { url: string; apiKey: string }): PodflowClient {
  return new PodflowClient({ url: options.url, apiKey: options.apiKey });
}

/** A file's text; `-` reads standard input. */
function readText(file: string): string {
  return readFileSync(file === '-' ? 0 : file, 'utf8');
}

function readDefinition(file: string): unknown {
  const text = readText(file);
  return extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function describeEvent(event: RunEventMessage): string {
  const time = new Date(event.at).toISOString().slice(11, 23);
  if (event.type === 'run') return `${time}  run            ${event.status}${event.error ? `  ${event.error.code}: ${event.error.message}` : ''}`;
  const attempt = event.attempt > 1 ? ` (attempt ${event.attempt})` : '';
  return `${time}  ${event.nodeId.padEnd(14)} ${event.status}${attempt}${event.error ? `  ${event.error.code}: ${event.error.message}` : ''}`;
}

function printFinalRun(run: RunView): number {
  if (run.status === 'succeeded') {
    console.log(JSON.stringify(run.outputs, null, 2));
    return EXIT.ok;
  }
  const error = run.error;
  console.error(`run ${run.id} ${run.status}${error ? `: ${error.code}${error.nodeId ? ` in node "${error.nodeId}"` : ''}: ${error.message}` : ''}`);
  if (error?.stack) console.error(error.stack);
  return EXIT.failed;
}

async function runCommand(file: string, options: { input: string[]; watch?: boolean; detach?: boolean; idempotencyKey?: string; url: string; apiKey: string }): Promise<number> {
  const client = clientFrom(options);
  const { id } = await client.submitRun({ workflow: readDefinition(file), inputs: parseKeyValue(options.input), idempotencyKey: options.idempotencyKey });
  console.error(`run ${id} submitted`);
  if (options.detach) {
    console.log(id);
    return EXIT.ok;
  }
  if (options.watch) {
    for await (const event of client.events(id)) console.error(describeEvent(event));
  }
  return printFinalRun(await client.waitForRun(id));
}

async function execCommand(file: string, options: { lang: string; arg: string[]; timeout?: string; url: string; apiKey: string }): Promise<number> {
  const result = await clientFrom(options).execute({
    language: options.lang,
    code: readText(file),
    args: parseKeyValue(options.arg),
    ...(options.timeout ? { timeout: options.timeout } : {}),
  });
  if (result.logs?.stdout) process.stderr.write(result.logs.stdout);
  if (result.logs?.stderr) process.stderr.write(result.logs.stderr);
  if (result.status === 'succeeded') {
    console.log(JSON.stringify({ output: result.output, ...(result.files ? { files: result.files } : {}) }, null, 2));
    return EXIT.ok;
  }
  console.error(`execution ${result.status}: ${result.error?.code ?? 'UNKNOWN'}: ${result.error?.message ?? ''}`);
  if (result.error?.stack) console.error(result.error.stack);
  return EXIT.failed;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('podflow').description('Run podflow workflows and Code nodes').showHelpAfterError();
  const common = (command: Command) =>
    command
      .option('--url <url>', 'coordinator URL (env PODFLOW_URL)', process.env.PODFLOW_URL ?? 'http://localhost:8080')
      .option('--api-key <key>', 'API key (env PODFLOW_API_KEY)', process.env.PODFLOW_API_KEY ?? 'dev-key');
  let exitCode: number = EXIT.ok;
  common(program.command('run <file>'))
    .description('run a workflow definition (YAML or JSON) and print its outputs')
    .option('-i, --input <key=value>', 'a run input; JSON values are parsed (repeatable)', collect, [])
    .option('-w, --watch', 'print node progress live')
    .option('-d, --detach', 'print the run id and return at once')
    .option('--idempotency-key <key>', 'the same key returns the same run')
    .action(async (file, options) => {
      exitCode = await runCommand(file, options);
    });
  common(program.command('exec <file>'))
    .description('run one Code node from a file (- for standard input) and print its output')
    .requiredOption('-l, --lang <language>', 'python | typescript | javascript')
    .option('-a, --arg <key=value>', 'an argument; JSON values are parsed (repeatable)', collect, [])
    .option('-t, --timeout <duration>', 'node timeout, e.g. 30s')
    .action(async (file, options) => {
      exitCode = await execCommand(file, options);
    });
  await program.parseAsync(argv);
  return exitCode;
}

main(process.argv).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof PodflowError) {
      console.error(`error: ${error.code}: ${error.message}`);
      process.exit(error.code === 'INVALID_WORKFLOW' || error.code === 'BAD_REQUEST' ? EXIT.usage : EXIT.failed);
    }
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(EXIT.usage);
  },
);
