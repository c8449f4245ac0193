import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HomeUnmounter } from './execution-sandbox';
import { BUILT_LAUNCHER } from './launch';
import { UnmountServer } from './unmount-server';

// The batching of home unmounts, with a stand-in `umount` that records how it was called.

let dir: string;
let fakeUmount: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podflow-unmounter-'));
  fakeUmount = join(dir, 'umount');
  await writeFile(fakeUmount, `#!/bin/sh\necho "$*" >> ${join(dir, 'calls')}\n`);
  await chmod(fakeUmount, 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const calls = async () => (await readFile(join(dir, 'calls'), 'utf8')).trim().split('\n');

describe('HomeUnmounter', () => {
  it('detaches the homes that gathered within its window with one umount', async () => {
    const unmounter = new HomeUnmounter(fakeUmount, 50);
    await Promise.all([unmounter.unmount('/w/exec-1/home'), unmounter.unmount('/w/exec-2/home'), unmounter.unmount('/w/exec-3/home')]);
    expect(await calls()).toEqual(['--lazy /w/exec-1/home /w/exec-2/home /w/exec-3/home']);
    await unmounter.unmount('/w/exec-4/home');
    expect(await calls()).toEqual(['--lazy /w/exec-1/home /w/exec-2/home /w/exec-3/home', '--lazy /w/exec-4/home']);
  });

  it('does not wait for the window once a batch is full', async () => {
    const unmounter = new HomeUnmounter(fakeUmount, 60_000, 2);
    await Promise.all([unmounter.unmount('/a'), unmounter.unmount('/b')]);
    expect(await calls()).toEqual(['--lazy /a /b']);
  });

  it('sends batches to the unmount server, and to umount when the server cannot be reached', async () => {
    const server = new UnmountServer(join(dir, 'missing-launcher'), '/w');
    const sent = jest.spyOn(server, 'detach');
    const unmounter = new HomeUnmounter(fakeUmount, 10, 64, server);
    await Promise.all([unmounter.unmount('/w/exec-1/home'), unmounter.unmount('/w/exec-2/home')]);
    expect(sent).toHaveBeenCalledWith(['/w/exec-1/home', '/w/exec-2/home']);
    expect(await calls()).toEqual(['--lazy /w/exec-1/home /w/exec-2/home']);
    unmounter.close();
  });

  const asRoot = existsSync(BUILT_LAUNCHER) && process.getuid?.() === 0 ? it : it.skip;

  asRoot('detaches through the real server without umount, and hands umount only what the server could not detach', async () => {
    const homes = [join(dir, 'exec-1', 'home'), join(dir, 'exec-2', 'home')];
    for (const home of homes) await mkdir(home, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'podflow-home', homes[0]!]);
    const unmounter = new HomeUnmounter(fakeUmount, 10, 64, new UnmountServer(BUILT_LAUNCHER, dir));
    try {
      await unmounter.unmount(homes[0]!);
      expect((await readFile('/proc/mounts', 'utf8')).includes(` ${homes[0]} `)).toBe(false);
      await expect(readFile(join(dir, 'calls'), 'utf8')).rejects.toThrow(/ENOENT/);
      // Not a mount point: the server answers an error, and umount gets that one home to try.
      await unmounter.unmount(homes[1]!);
      expect(await calls()).toEqual([`--lazy ${homes[1]}`]);
    } finally {
      unmounter.close();
    }
  });

  it('resolves even when umount fails (clean-up is best effort; the next sweep retries)', async () => {
    const unmounter = new HomeUnmounter(join(dir, 'missing-umount'), 10);
    await expect(unmounter.unmount('/a')).resolves.toBeUndefined();
  });
});
