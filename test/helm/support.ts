import { spawn, spawnSync } from 'node:child_process';

// What both Helm suites need: running helm and kubectl, and finding the local cluster's kubectl.

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], input?: string): Ran {
  const result = spawnSync(command, args, { encoding: 'utf8', input, env: process.env, maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** `run` without blocking the event loop: a test keeps polling the API while helm rolls out. */
export function runAsync(command: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** kubectl on PATH, or the one `cluster:up` built. */
export function kubectlPath(): string {
  const found = spawnSync('bash', ['-lc', 'command -v kubectl || ls ~/.cache/podflow/k8s/*/bin/kubectl | tail -1'], { encoding: 'utf8' });
  const path = found.stdout.trim().split('\n').pop();
  if (!path) throw new Error('kubectl not found: run through `npm run test:k8s`, which brings the local cluster (and its kubectl) up');
  return path;
}
