import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('refuses paths that leave the directory, symlinks and non-files', async () => {
    await writeFile(join(home, 'ok.txt'), 'ok');
    await symlink(join(root, 'secret.txt'), join(home, 'link.txt'));
    await symlink(root, join(home, 'up'));
    const result = await collectFiles(
      home,
      [
        reported('../secret.txt'),
        reported('/etc/passwd'),
        reported('out/../../secret.txt'),
        reported('./ok.txt'),
        reported('link.txt'),
        reported('up/secret.txt'),
        reported('out'),
        reported('missing.txt'),
        reported(''),
        { path: 42 as unknown as string, size: 0, sha256: '' },
        reported('ok.txt'),
      ],
      limits,
    );
    if (!result.ok) throw new Error('expected files');
    expect(result.files.map((file) => file.path)).toEqual(['ok.txt']);
    expect(result.rejected.map((file) => file.reason)).toEqual([
      'not a normalized relative path',
      'not a normalized relative path',
      'not a normalized relative path',
      'not a normalized relative path',
      'a symbolic link',
      'reached through a symbolic link',
      'not a regular file',
      'missing',
      'not a path',
      'not a path',
    ]);
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
});
