import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FILE_PATH_EXAMPLES } from '@podflow/protocol';
import type { Readable } from 'node:stream';
import { collectFiles } from './file-collect';

let root: string;
let home: string;
const limits = { maxFiles: 10, maxFilesBytes: 1000 };

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'podflow-collect-spec-'));
  home = join(root, 'home');
  await mkdir(join(home, 'out'), { recursive: true });
  await writeFile(join(root, 'secret.txt'), 'host secret');
});

afterEach(() => rm(root, { recursive: true, force: true }));

async function text(stream: Readable): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

const reported = (path: string, size = 0, sha256 = 'forged') => ({ path, size, sha256 });

describe('collectFiles', () => {
  it('returns the reported files in order, with size and sha256 computed on the host', async () => {
    await writeFile(join(home, 'out', 'b.csv'), 'b,c\n');
    await writeFile(join(home, 'a.txt'), 'hello');
    const result = await collectFiles(home, [reported('out/b.csv', 999), reported('a.txt')], limits);
    if (!result.ok) throw new Error('expected files');
    expect(result.files.map(({ path, size, sha256 }) => ({ path, size, sha256 }))).toEqual([
      { path: 'out/b.csv', size: 4, sha256: createHash('sha256').update('b,c\n').digest('hex') },
      { path: 'a.txt', size: 5, sha256: createHash('sha256').update('hello').digest('hex') },
    ]);
    expect(await text(result.files[1].open())).toBe('hello');
    expect(await text(result.files[1].open())).toBe('hello');
  });

  it('refuses symlinks, paths through symlinks, non-files and missing files', async () => {
    await writeFile(join(home, 'ok.txt'), 'ok');
    await symlink(join(root, 'secret.txt'), join(home, 'link.txt'));
    await symlink(root, join(home, 'up'));
    const result = await collectFiles(
      home,
      [
        reported('link.txt'),
        reported('up/secret.txt'),
        reported('out'),
        reported('missing.txt'),
        { path: 42 as unknown as string, size: 0, sha256: '' },
        reported('ok.txt'),
      ],
      limits,
    );
    if (!result.ok) throw new Error('expected files');
    expect(result.files.map((file) => file.path)).toEqual(['ok.txt']);
    expect(result.rejected.map((file) => file.reason)).toEqual(['a symbolic link', 'reached through a symbolic link', 'not a regular file', 'missing', 'not a path']);
  });

  // The same table the runners are tested against (libs/runner file-paths.spec.ts): the host
  // refuses exactly what they refuse, with the same reason, and takes what they take.
  describe.each(FILE_PATH_EXAMPLES.map((example) => [JSON.stringify(example.path).slice(0, 50), example] as const))('the storable-path rule: %s', (_label, example) => {
    it(example.reason ? 'fails the execution with OUTPUT_INVALID naming the path and the reason' : 'collects the file', async () => {
      const onDisk = example.reason === undefined;
      if (onDisk) {
        await mkdir(dirname(join(home, ...example.path.split('/'))), { recursive: true });
        await writeFile(join(home, ...example.path.split('/')), 'data');
      }
      await writeFile(join(home, 'fine.txt'), 'fine');
      const result = await collectFiles(home, [reported('fine.txt'), reported(example.path)], limits);
      if (onDisk) {
        expect(result.ok && result.files.map((file) => file.path)).toEqual(['fine.txt', example.path]);
      } else {
        expect(result).toMatchObject({ ok: false, error: { code: 'OUTPUT_INVALID', details: { count: 1, files: [{ reason: example.reason }] } } });
      }
    });
  });

  it('fails on forged paths that leave the directory before looking at the disk', async () => {
    const result = await collectFiles(home, [reported('../secret.txt'), reported('/etc/passwd'), reported('out/../../secret.txt'), reported('./x')], limits);
    expect(result).toMatchObject({ ok: false, error: { code: 'OUTPUT_INVALID', details: { count: 4 } } });
    expect(!result.ok && result.error.message).toMatch(/^4 file\(s\) written under \/home\/user cannot be stored: "\.\.\/secret\.txt" \(the path has a "\." or "\.\." segment\)/);
  });

  it('lists a path once even if the runner repeats it', async () => {
    await writeFile(join(home, 'a.txt'), 'a');
    const result = await collectFiles(home, [reported('a.txt'), reported('a.txt')], limits);
    expect(result.ok && result.files.map((file) => file.path)).toEqual(['a.txt']);
  });

  it('enforces maxFiles and maxFilesBytes again on the host', async () => {
    await writeFile(join(home, 'a.txt'), 'a'.repeat(600));
    await writeFile(join(home, 'b.txt'), 'b'.repeat(600));
    const bytes = await collectFiles(home, [reported('a.txt'), reported('b.txt')], limits);
    expect(bytes.ok).toBe(false);
    expect(!bytes.ok && bytes.error.code).toBe('FILES_TOO_LARGE');
    const count = await collectFiles(home, [reported('a.txt'), reported('b.txt')], { maxFiles: 1, maxFilesBytes: 10_000 });
    expect(!count.ok && count.error.message).toContain('more than 1 files');
  });

  it('refuses a list longer than maxFiles before looking at the disk (a runner never reports one: the code wrote it)', async () => {
    const list = Array.from({ length: 200_000 }, (_, i) => reported(`missing-${i}.txt`));
    // A home that does not exist: any look at the disk would throw.
    const result = await collectFiles(join(root, 'no-such-home'), list, limits);
    expect(result).toEqual({ ok: false, rejected: [], error: expect.objectContaining({ code: 'FILES_TOO_LARGE' }) });
  });
});
