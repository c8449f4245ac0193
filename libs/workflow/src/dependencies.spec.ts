import { PodflowError } from '@podflow/protocol';
import { InvalidDependencyError, normaliseDependencies, parseDependencies, parseDependency, type DependencyProblemKind } from './dependencies';

function specOf(language: 'python' | 'typescript', raw: string): string {
  const result = parseDependency(language, raw);
  if (!result.ok) throw new Error(`expected ${JSON.stringify(raw)} to parse: ${result.problem.message}`);
  return result.dependency.spec;
}

function problemOf(language: 'python' | 'typescript' | 'javascript', raw: string) {
  const result = parseDependency(language, raw);
  if (result.ok) throw new Error(`expected ${JSON.stringify(raw)} to be refused, got ${result.dependency.spec}`);
  return result.problem;
}

describe('parseDependency (pip)', () => {
  it.each([
    ['tabulate', 'tabulate'],
    ['tabulate==0.9.0', 'tabulate==0.9.0'],
    [' Python_Dateutil >= 2.8 , <3', 'python-dateutil<3,>=2.8'],
    ['zope.interface', 'zope-interface'],
    ['Foo__Bar-.baz', 'foo-bar-baz'],
    ['requests[socks]', 'requests[socks]'],
    ['requests[ Security , socks ]>=2.31', 'requests[security,socks]>=2.31'],
    ['requests[socks,socks]', 'requests[socks]'],
    ['requests[]', 'requests'],
    ['numpy>=1.26,!=1.26.1,<2', 'numpy!=1.26.1,<2,>=1.26'],
    ['numpy >=1.26, >=1.26', 'numpy>=1.26'],
    ['django==4.2.*', 'django==4.2.*'],
    ['django!=4.*', 'django!=4.*'],
    ['pandas~=2.1', 'pandas~=2.1'],
    ['pkg===1.0-custom', 'pkg===1.0-custom'],
    ['torch==2.1.0+CPU', 'torch==2.1.0+cpu'],
    ['pytest>=8.0RC1', 'pytest>=8.0rc1'],
    ['foo==1!2.0.post1.dev3', 'foo==1!2.0.post1.dev3'],
  ])('normalises %j to %j', (raw, spec) => {
    expect(specOf('python', raw)).toBe(spec);
  });

  it('returns the PyPI ecosystem and the PEP 503 name', () => {
    expect(parseDependency('python', 'Python_Dateutil>=2.8')).toEqual({
      ok: true,
      dependency: { ecosystem: 'pypi', name: 'python-dateutil', spec: 'python-dateutil>=2.8', raw: 'Python_Dateutil>=2.8' },
    });
  });

  it.each<[string, DependencyProblemKind, RegExp]>([
    ['https://example.com/pkg-1.0.tar.gz', 'url', /is a URL/],
    ['http://evil.test/simple/requests', 'url', /is a URL/],
    ['git+https://github.com/psf/requests', 'vcs', /is a VCS reference/],
    ['hg+https://hg.example.com/pkg', 'vcs', /is a VCS reference/],
    ['git@github.com:psf/requests.git', 'vcs', /is a VCS reference/],
    ['https://github.com/psf/requests.git', 'vcs', /git repository URL/],
    ['requests @ https://example.com/requests.whl', 'direct_reference', /direct reference/],
    ['requests@git+https://github.com/psf/requests', 'direct_reference', /direct reference/],
    ['./vendor/pkg', 'path', /is a local path/],
    ['../pkg', 'path', /is a local path/],
    ['/opt/pkg', 'path', /is a local path/],
    ['~/pkg', 'path', /is a local path/],
    ['.', 'path', /is a local path/],
    ['vendor/pkg', 'path', /is a local path/],
    ['file:///opt/pkg', 'path', /local path/],
    ['pkg-1.0-py3-none-any.whl', 'path', /archive/],
    ['pkg-1.0.tar.gz', 'path', /archive/],
    ['--index-url https://evil.test/simple', 'option', /installer option \("--index-url"\)/],
    ['--index-url x', 'option', /installer option/],
    ['-e .', 'option', /installer option \("-e"\)/],
    ['-r requirements.txt', 'option', /installer option \("-r"\)/],
    ['tabulate --hash=sha256:abc', 'option', /installer option \("--hash"\)/],
    ['--extra-index-url=https://x', 'option', /installer option \("--extra-index-url"\)/],
    ['tabulate; rm -rf /', 'shell', /contains shell syntax \(";"\)/],
    ['tabulate && curl x', 'shell', /shell syntax \("&"\)/],
    ['tabulate | sh', 'shell', /shell syntax \("\|"\)/],
    ['tabulate $(whoami)', 'shell', /shell syntax/],
    ['tabulate`id`', 'shell', /shell syntax \("`"\)/],
    ['tabulate > /tmp/x', 'shell', /shell syntax \(">"\)/],
    ['tabulate\nrequests', 'shell', /a line break/],
    ['tabulate\u0000', 'shell', /a NUL byte/],
    ["tabulate'", 'shell', /shell syntax/],
    ['requests; python_version < "3.9"', 'marker', /environment marker/],
    ['requests ; sys_platform == "linux"', 'marker', /environment marker/],
    ['requests; python_version < "3.9"; rm -rf /', 'shell', /shell syntax \(";"\)/],
    ['requests; python_version < "3.9" && id', 'shell', /shell syntax/],
    ['', 'empty', /is empty/],
    ['   ', 'empty', /is empty/],
    [`a${'b'.repeat(200)}`, 'too_long', /the limit is 200/],
    ['tabulate=0.9', 'syntax', /use "==" for an exact version, e.g. "tabulate==0.9"/],
    ['tabulate 0.9', 'syntax', /without an operator/],
    ['tabulate>=banana', 'syntax', /not a PEP 440 version/],
    ['tabulate>=1.*', 'syntax', /wildcard/],
    ['pandas~=2', 'syntax', /single-number/],
    ['tabulate>=1,,<2', 'syntax', /empty version clause/],
    ['requests[socks', 'syntax', /unclosed/],
    ['requests[so cks]', 'syntax', /invalid extra/],
    ['requests (>=2.0)', 'syntax', /parenthesised.*"requests>=2.0"/],
    ['_private', 'syntax', /does not start with a package name/],
  ])('refuses %j as %s', (raw, kind, message) => {
    const problem = problemOf('python', raw);
    expect(problem.kind).toBe(kind);
    expect(problem.message).toMatch(message);
  });

  it('names the spec, JSON-quoted, and says how to fix it', () => {
    expect(problemOf('python', 'git+https://github.com/psf/requests').message).toBe(
      '"git+https://github.com/psf/requests" is a VCS reference: only packages from PyPI can be installed: write a plain package name with an optional version, e.g. "tabulate==0.9.0"',
    );
    expect(problemOf('python', 'tabulate; rm -rf /').message).toMatch(/^"tabulate; rm -rf \/" contains shell syntax \(";"\): declare one package per entry/);
    expect(problemOf('python', 'a\nb').message).toMatch(/^"a\\nb" /);
  });

  it('shortens a very long spec in the message', () => {
    const message = problemOf('python', `x${'y'.repeat(500)}`).message;
    expect(message.length).toBeLessThan(300);
    expect(message).toMatch(/\.\.\." is 501 characters long/);
  });
});

describe('parseDependency (npm)', () => {
  it.each([
    ['dayjs', 'dayjs'],
    ['dayjs@1.11.13', 'dayjs@1.11.13'],
    ['dayjs@^1.2', 'dayjs@^1.2'],
    ['dayjs@~1', 'dayjs@~1'],
    ['dayjs@>=1 <2', 'dayjs@>=1 <2'],
    ['dayjs@ >= 1.2   < 2 ', 'dayjs@>=1.2 <2'],
    ['dayjs@1.x', 'dayjs@1.x'],
    ['dayjs@*', 'dayjs@*'],
    ['dayjs@1 || 2', 'dayjs@1 || 2'],
    ['dayjs@1||>=3.1.0-rc.1', 'dayjs@1 || >=3.1.0-rc.1'],
    ['dayjs@1.0.0 - 2.0.0', 'dayjs@1.0.0 - 2.0.0'],
    ['dayjs@v1.2.3', 'dayjs@1.2.3'],
    ['dayjs@=1.2.3', 'dayjs@1.2.3'],
    ['dayjs@latest', 'dayjs@latest'],
    ['dayjs@next', 'dayjs@next'],
    ['@types/node', '@types/node'],
    ['@types/node@^20.11', '@types/node@^20.11'],
    ['lodash.merge@4', 'lodash.merge@4'],
    ['socket.io-client@4.7.5', 'socket.io-client@4.7.5'],
  ])('normalises %j to %j', (raw, spec) => {
    expect(specOf('typescript', raw)).toBe(spec);
  });

  it('returns the npm ecosystem for TypeScript and JavaScript', () => {
    const ts = parseDependency('typescript', '@types/node@20');
    const js = parseDependency('javascript', '@types/node@20');
    expect(ts).toEqual({ ok: true, dependency: { ecosystem: 'npm', name: '@types/node', spec: '@types/node@20', raw: '@types/node@20' } });
    expect(js).toEqual(ts);
  });

  it.each<[string, DependencyProblemKind, RegExp]>([
    ['https://registry.example.com/dayjs/-/dayjs-1.0.0.tgz', 'url', /is a URL/],
    ['dayjs@https://example.com/dayjs.tgz', 'url', /is a URL/],
    ['git+https://github.com/iamkun/dayjs.git', 'vcs', /VCS reference/],
    ['git://github.com/iamkun/dayjs.git', 'vcs', /VCS reference/],
    ['dayjs@git+ssh://git@github.com/iamkun/dayjs.git', 'vcs', /VCS reference/],
    ['github:iamkun/dayjs', 'vcs', /hosted git repository/],
    ['dayjs@github:iamkun/dayjs#v1', 'vcs', /hosted git repository/],
    ['iamkun/dayjs', 'vcs', /GitHub "user\/repo" shorthand/],
    ['iamkun/dayjs#v1.11.13', 'vcs', /GitHub "user\/repo" shorthand/],
    ['npm:dayjs@1', 'alias', /npm alias/],
    ['day@npm:dayjs@1', 'alias', /npm alias/],
    ['file:../dayjs', 'path', /file: URL/],
    ['dayjs@file:../dayjs', 'path', /file: URL/],
    ['link:../dayjs', 'path', /local package reference \(link:\)/],
    ['dayjs@workspace:*', 'path', /local package reference/],
    ['./dayjs', 'path', /local path/],
    ['/tmp/dayjs', 'path', /local path/],
    ['../dayjs', 'path', /local path/],
    ['~/dayjs', 'path', /local path/],
    ['dayjs-1.11.13.tgz', 'path', /archive/],
    ['--registry=https://evil.test', 'option', /installer option \("--registry"\)/],
    ['-g dayjs', 'option', /installer option \("-g"\)/],
    ['dayjs --ignore-scripts', 'option', /installer option/],
    ['dayjs; rm -rf /', 'shell', /shell syntax \(";"\)/],
    ['dayjs || rm -rf /', 'shell', /shell syntax \("\|"\)/],
    ['dayjs@1 | sh', 'shell', /shell syntax \("\|"\)/],
    ['dayjs@1 >/tmp/x', 'shell', /shell syntax/],
    ['dayjs@"1"', 'shell', /shell syntax/],
    ['', 'empty', /is empty/],
    ['DayJS', 'syntax', /lowercase, e\.g\. "dayjs"/],
    ['_dayjs', 'syntax', /not a valid npm package name/],
    ['.dayjs', 'syntax', /not a valid npm package name/],
    ['day js', 'syntax', /not a valid npm package name/],
    ['@types', 'syntax', /scoped name/],
    ['@types/node/extra', 'syntax', /scoped name/],
    ['node_modules', 'syntax', /reserved/],
    ['dayjs@', 'syntax', /nothing after "@"/],
    ['dayjs@1.2.3.4', 'syntax', /neither a semver range nor a dist-tag/],
    ['dayjs@1 ||', 'syntax', /empty alternative/],
    ['dayjs@>=banana!', 'syntax', /neither a semver range/],
  ])('refuses %j as %s', (raw, kind, message) => {
    const problem = problemOf('javascript', raw);
    expect(problem.kind).toBe(kind);
    expect(problem.message).toMatch(message);
    expect(problem.message.startsWith(JSON.stringify(raw))).toBe(true);
  });

  it('suggests an npm spec in the fix', () => {
    expect(problemOf('typescript', 'github:iamkun/dayjs').message).toMatch(/only packages from the npm registry can be installed: write a plain package name with an optional version or range, e\.g\. "dayjs@1\.11\.13"$/);
  });
});

describe('parseDependencies', () => {
  it('reports a second spec for the same normalised package as a duplicate, with both indexes', () => {
    const { dependencies, problems } = parseDependencies('python', ['Requests>=2', 'tabulate', 'requests[socks]', 'git+https://x/y']);
    expect(dependencies.map((d) => d.spec)).toEqual(['requests>=2', 'tabulate']);
    expect(problems).toEqual([
      expect.objectContaining({ index: 2, kind: 'duplicate', message: expect.stringMatching(/^"requests\[socks\]" declares the package "requests" again \(dependencies\[0\] is "Requests>=2"\)/) }),
      expect.objectContaining({ index: 3, kind: 'vcs' }),
    ]);
  });

  it('treats npm names as they are written (no PEP 503 folding)', () => {
    expect(parseDependencies('typescript', ['lodash.merge', 'lodash-merge']).problems).toEqual([]);
    expect(parseDependencies('typescript', ['dayjs@1', 'dayjs@2']).problems).toEqual([expect.objectContaining({ index: 1, kind: 'duplicate' })]);
  });
});

describe('normaliseDependencies', () => {
  it('sorts the canonical specs and collapses exact repeats', () => {
    expect(normaliseDependencies('python', ['tabulate==0.9.0', ' Python_Dateutil >= 2.8 , <3', 'Tabulate == 0.9.0', 'attrs'])).toEqual([
      'attrs',
      'python-dateutil<3,>=2.8',
      'tabulate==0.9.0',
    ]);
    expect(normaliseDependencies('typescript', ['zod@^3', '@types/node@20', 'dayjs'])).toEqual(['@types/node@20', 'dayjs', 'zod@^3']);
    expect(normaliseDependencies('javascript', [])).toEqual([]);
  });

  it('is the same for any order and spelling of the same set', () => {
    const a = normaliseDependencies('python', ['numpy>=1.26,<2', 'pandas']);
    const b = normaliseDependencies('python', ['Pandas', 'numpy <2 , >=1.26']);
    expect(b).toEqual(a);
  });

  it('throws INVALID_DEPENDENCY for a bad spec or two different specs of one package', () => {
    expect(() => normaliseDependencies('python', ['tabulate', '-e .'])).toThrow(InvalidDependencyError);
    try {
      normaliseDependencies('python', ['numpy<2', 'numpy>=1']);
      throw new Error('expected a throw');
    } catch (error) {
      expect(error).toBeInstanceOf(PodflowError);
      expect((error as PodflowError).code).toBe('INVALID_DEPENDENCY');
      expect((error as PodflowError).message).toMatch(/"numpy>=1" declares the package "numpy" again/);
    }
  });
});
