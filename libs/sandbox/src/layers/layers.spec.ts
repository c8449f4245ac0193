import { chooseEvictions } from './eviction';
import { installerArgv, installerEnv, installerOutputTail, installFailureMessage } from './installer';
import { layerEnv, layerKey, parseLayerManifest } from './layer';

describe('layerKey', () => {
  it('depends on the runtime, the ecosystem and the set of specs, not their order', () => {
    const key = layerKey('cpython-3.11.2-linux-x86_64', 'pypi', ['tabulate==0.9.0', 'python-dateutil==2.9.0']);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(layerKey('cpython-3.11.2-linux-x86_64', 'pypi', ['python-dateutil==2.9.0', 'tabulate==0.9.0'])).toBe(key);
    expect(layerKey('cpython-3.12.1-linux-x86_64', 'pypi', ['tabulate==0.9.0', 'python-dateutil==2.9.0'])).not.toBe(key);
    expect(layerKey('cpython-3.11.2-linux-x86_64', 'pypi', ['tabulate==0.9.0'])).not.toBe(key);
    expect(layerKey('cpython-3.11.2-linux-x86_64', 'npm', ['tabulate==0.9.0', 'python-dateutil==2.9.0'])).not.toBe(key);
  });
});

describe('layerEnv', () => {
  it('points the Python runner at python/ and Node at node_modules/', () => {
    expect(layerEnv('pypi', '/opt/podflow/layer')).toEqual({ PODFLOW_PYTHONPATH: '/opt/podflow/layer/python' });
    expect(layerEnv('npm', '/opt/podflow/layer')).toEqual({ NODE_PATH: '/opt/podflow/layer/node_modules' });
  });
});

describe('parseLayerManifest', () => {
  it('accepts only a manifest of the expected layer', () => {
    const text = JSON.stringify({ key: 'k1', runtimeId: 'r', ecosystem: 'pypi', specs: ['a'], sizeBytes: 10, createdAt: '2026-01-01T00:00:00Z', builtBy: 'w' });
    expect(parseLayerManifest(text, 'k1')?.sizeBytes).toBe(10);
    expect(parseLayerManifest(text, 'k2')).toBeUndefined();
    expect(parseLayerManifest('{"key":"k1"', 'k1')).toBeUndefined();
    expect(parseLayerManifest('{"key":"k1","specs":[]}', 'k1')).toBeUndefined();
  });
});

describe('installerArgv', () => {
  const commands = { python: '/usr/bin/python3', npm: ['node', '/opt/npm-cli.js'] };
  it('runs pip as a module of the sandbox interpreter, into <target>/python, specs as separate arguments', () => {
    const argv = installerArgv('pypi', '/c/.building/k-1', ['tabulate==0.9.0', 'python-dateutil[extra]>=2'], commands, { npmIgnoreScripts: true });
    expect(argv.slice(0, 6)).toEqual(['/usr/bin/python3', '-m', 'pip', 'install', '--target', '/c/.building/k-1/python']);
    expect(argv).toContain('--no-input');
    expect(argv.slice(-2)).toEqual(['tabulate==0.9.0', 'python-dateutil[extra]>=2']);
  });
  it('runs npm into <target>/node_modules without a lockfile, and without lifecycle scripts unless allowed', () => {
    const argv = installerArgv('npm', '/c/.building/k-2', ['dayjs@1.11.13'], commands, { npmIgnoreScripts: true });
    expect(argv.slice(0, 5)).toEqual(['node', '/opt/npm-cli.js', 'install', '--prefix', '/c/.building/k-2']);
    expect(argv).toEqual(expect.arrayContaining(['--no-package-lock', '--omit=dev', '--ignore-scripts']));
    expect(argv.at(-1)).toBe('dayjs@1.11.13');
    expect(installerArgv('npm', '/t', ['dayjs'], commands, { npmIgnoreScripts: false })).not.toContain('--ignore-scripts');
  });
  it('refuses an empty set (nothing to build means no layer)', () => {
    expect(() => installerArgv('pypi', '/t', [], commands, { npmIgnoreScripts: true })).toThrow(/no specs/);
  });
});

describe('installerEnv', () => {
  it('passes PATH, proxies, CA bundles and installer settings, and nothing else', () => {
    const env = installerEnv(
      { PATH: '/usr/bin', HTTPS_PROXY: 'http://proxy:3128', PIP_INDEX_URL: 'https://mirror/simple', npm_config_registry: 'https://npm.mirror/', AWS_SECRET_ACCESS_KEY: 'secret', REDIS_URL: 'redis://x' },
      '/cache/home',
    );
    expect(env).toMatchObject({ PATH: '/usr/bin', HTTPS_PROXY: 'http://proxy:3128', PIP_INDEX_URL: 'https://mirror/simple', npm_config_registry: 'https://npm.mirror/', HOME: '/cache/home' });
    expect(env).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
    expect(env).not.toHaveProperty('REDIS_URL');
  });

  it('drops settings that carry credentials: build scripts run in this environment', () => {
    const env = installerEnv(
      { PIP_INDEX_URL: 'https://ci-bot:S3CRET@pypi.example/simple', HTTPS_PROXY: 'http://user:pw@proxy:3128', npm_config__authToken: 'npm_abc', PIP_PASSWORD: 'x', PIP_TRUSTED_HOST: 'pypi.example' },
      '/tmp',
    );
    expect(Object.keys(env).sort()).toEqual(['HOME', 'LANG', 'PIP_NO_INPUT', 'PIP_TRUSTED_HOST']);
  });
});

describe('installerOutputTail', () => {
  it('never shows a URL password', () => {
    expect(installerOutputTail('ERROR: 401 from https://ci-bot:S3CRET@pypi.example/simple/nope/')).toBe('ERROR: 401 from https://ci-bot:***@pypi.example/simple/nope/');
  });

  it('keeps the last lines within the byte budget, without colour codes or blank lines', () => {
    const output = ['Collecting nope', '', '\u001b[31mERROR: Could not find a version that satisfies the requirement nope-pkg\u001b[0m', 'ERROR: No matching distribution found for nope-pkg', ''].join('\n');
    expect(installerOutputTail(output)).toBe(['Collecting nope', 'ERROR: Could not find a version that satisfies the requirement nope-pkg', 'ERROR: No matching distribution found for nope-pkg'].join('\n'));
    const long = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join('\n');
    const tail = installerOutputTail(long, 100);
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(100);
    expect(tail.endsWith('line 999')).toBe(true);
    expect(tail.startsWith('line ')).toBe(true);
  });
  it('builds a message naming the installer, the specs and how it ended', () => {
    expect(installFailureMessage('npm', ['nope@1'], 'exit code 1', 'npm error 404')).toBe('npm could not install nope@1 (exit code 1):\nnpm error 404');
    expect(installFailureMessage('pypi', ['a', 'b'], 'timed out after 5 s', '')).toBe('pip could not install a b (timed out after 5 s)');
  });
});

describe('chooseEvictions', () => {
  const now = 1_000_000;
  const layer = (key: string, sizeBytes: number, ageMs: number) => ({ key, sizeBytes, lastUsedAt: now - ageMs });

  it('evicts nothing under the cap', () => {
    expect(chooseEvictions([layer('a', 10, 5000), layer('b', 10, 5000)], { maxBytes: 20, minIdleMs: 0, now })).toEqual([]);
  });
  it('evicts the least recently used first, only as many as needed', () => {
    const chosen = chooseEvictions([layer('new', 40, 1000), layer('old', 40, 9000), layer('mid', 40, 5000)], { maxBytes: 80, minIdleMs: 0, now });
    expect(chosen.map((l) => l.key)).toEqual(['old']);
    const two = chooseEvictions([layer('new', 40, 1000), layer('old', 40, 9000), layer('mid', 40, 5000)], { maxBytes: 40, minIdleMs: 0, now });
    expect(two.map((l) => l.key)).toEqual(['old', 'mid']);
  });
  it('never evicts a layer used within the idle window or one it is told to keep', () => {
    const layers = [layer('busy', 50, 100), layer('kept', 50, 9000), layer('idle', 50, 8000)];
    expect(chooseEvictions(layers, { maxBytes: 60, minIdleMs: 1000, now, keep: ['kept'] }).map((l) => l.key)).toEqual(['idle']);
  });
});
