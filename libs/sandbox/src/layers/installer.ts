import type { Ecosystem } from './layer';

/** How to start each installer. pip runs as a module of the very interpreter the sandbox uses. */
export interface InstallerCommands {
  python: string;
  /** e.g. `['npm']` or `['node', '/opt/podflow/npm/bin/npm-cli.js']`. */
  npm: string[];
}

export interface InstallerOptions {
  /** npm lifecycle scripts (`postinstall`...) run arbitrary package code; off by default. */
  npmIgnoreScripts: boolean;
}

/**
 * The installer command that puts `specs` into the layer directory `target`: Python packages
 * under `<target>/python` (pip `--target`), npm packages under `<target>/node_modules`. Specs were
 * validated before (plain names and versions only, never an option), and go in as separate argv
 * entries, never through a shell.
 */
export function installerArgv(ecosystem: Ecosystem, target: string, specs: readonly string[], commands: InstallerCommands, options: InstallerOptions): string[] {
  if (specs.length === 0) throw new Error('installerArgv: no specs to install');
  if (ecosystem === 'pypi') {
    return [
      commands.python,
      '-m',
      'pip',
      'install',
      '--target',
      `${target}/python`,
      '--no-input',
      '--disable-pip-version-check',
      '--no-warn-script-location',
      '--progress-bar',
      'off',
      ...specs,
    ];
  }
  return [
    ...commands.npm,
    'install',
    '--prefix',
    target,
    '--no-audit',
    '--no-fund',
    '--no-package-lock',
    '--omit=dev',
    '--loglevel=warn',
    '--update-notifier=false',
    ...(options.npmIgnoreScripts ? ['--ignore-scripts'] : []),
    ...specs,
  ];
}

/**
 * What an installer may see of the worker's environment: its PATH, proxies, CA bundles and its
 * own configuration (`PIP_*` such as PIP_INDEX_URL, `npm_config_*` such as the registry), and
 * nothing else (no cloud credentials, no database URLs).
 */
export function installerEnv(hostEnv: NodeJS.ProcessEnv, home: string): Record<string, string> {
  const env: Record<string, string> = { HOME: home, LANG: 'C.UTF-8', PIP_NO_INPUT: '1' };
  for (const [name, value] of Object.entries(hostEnv)) {
    if (value === undefined) continue;
    if (!(PASSED_THROUGH.has(name) || /^(PIP_|npm_config_|NPM_CONFIG_)/.test(name))) continue;
    // A package's build script runs in the installer's environment and can print it: no credentials.
    if (isCredential(name, value)) continue;
    env[name] = value;
  }
  return env;
}

/**
 * Whether a setting carries a credential: a secret-looking name (`npm_config__authToken`,
 * `PIP_PASSWORD`...) or a URL with a password (`https://user:token@mirror/simple`). Private
 * indexes that need one are not reachable from confined installs; see libs/sandbox/README.md.
 */
export function isCredential(name: string, value: string): boolean {
  return /auth|token|passw|secret|credential|_key$/i.test(name) || URL_PASSWORD.test(value);
}

/**
 * A URL's userinfo (`scheme://user:password@`, or a token alone: `https://<token>@mirror/`,
 * `http://<token>@proxy:3128`): a credential either way.
 */
const URL_PASSWORD = /:\/\/[^/\s@]+@/;

const PASSED_THROUGH = new Set([
  'PATH',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'NODE_EXTRA_CA_CERTS',
]);

/** How an installer process ended. */
export type InstallerEnding =
  | { kind: 'exit'; code: number; output: string }
  | { kind: 'signal'; signal: string; pid: number; output: string }
  | { kind: 'timeout'; output: string }
  | { kind: 'spawn-error'; message: string; output: string };

/** One install: the argv for a target directory, the staging directory that receives it, and its bounds. */
export interface InstallerRun {
  /** The installer command writing into `target` (the staging directory as the installer sees it). */
  argv(target: string): string[];
  /** Host directory that receives the layer; nothing else is writable to the installer. */
  staging: string;
  /** Environment from `installerEnv` (HOME and PATH are the runner's to set). */
  env: Record<string, string>;
  timeoutMs: number;
  /** Names the build in host paths and process lists (the layer key). */
  label?: string;
}

/**
 * Runs installs. The process driver's confines each one like user code (bubblewrap, its own
 * uid, cgroup, seccomp, egress namespace; `process/confined-installer.ts`): a package's build
 * script is tenant code.
 */
export type InstallerRunner = (run: InstallerRun) => Promise<InstallerEnding>;

/** Keeps at most this much of an installer's output in an error message. */
export const INSTALL_TAIL_BYTES = 4096;

/**
 * The end of an installer's output for DEPENDENCY_INSTALL_FAILED: colour codes and progress noise
 * removed, at most `maxBytes`, cut at a line boundary. The last lines are where pip and npm say
 * what went wrong (no matching distribution, ERESOLVE, a compiler error).
 */
export function installerOutputTail(output: string, maxBytes = INSTALL_TAIL_BYTES): string {
  const clean = output
    // eslint-disable-next-line no-control-regex
    .replace(/\u001b\[[0-9;]*[A-Za-z]/g, '')
    .replace(/\r/g, '\n')
    // Never echo a URL's password (an index or proxy URL in pip's messages).
    .replace(/(:\/\/[^/\s:@]*):[^/\s@]+@/g, '$1:***@');
  const lines = clean.split('\n').map((line) => line.trimEnd()).filter((line) => line.length > 0 && !/^\s*(━|\|)/.test(line));
  const kept: string[] = [];
  let size = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const length = Buffer.byteLength(lines[i]) + 1;
    if (size + length > maxBytes) break;
    kept.unshift(lines[i]);
    size += length;
  }
  if (kept.length === 0 && lines.length > 0) kept.push(lines[lines.length - 1].slice(-maxBytes));
  return kept.join('\n');
}

/** The message of DEPENDENCY_INSTALL_FAILED: which installer, which specs, how it ended, its output's tail. */
export function installFailureMessage(ecosystem: Ecosystem, specs: readonly string[], ending: string, tail: string): string {
  const installer = ecosystem === 'pypi' ? 'pip' : 'npm';
  const subject = `${installer} could not install ${specs.join(' ')} (${ending})`;
  return tail ? `${subject}:\n${tail}` : subject;
}

/** `300 s` for whole seconds, else `250 ms`: durations as the settings spell them. */
export function describeDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
