import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The order in which the code wrote files under the workdir, as the kernel reported it (inotify,
 * through fs.watch). Modification times alone cannot order files written back to back: they share
 * a clock tick (several milliseconds), so capture would fall back to the path. This breaks those
 * ties (file-capture.ts sorts by mtime, then by this sequence, then by path).
 *
 * One non-recursive watch per directory: a directory created by the code is watched when its
 * event is handled, and scanned then, so files written into it before the watch existed still
 * get their place in the stream (right after the directory itself). Events reach the runner on
 * the event loop, in the kernel's order, also when `main` is synchronous: `settle()` lets the loop
 * deliver what is queued. A change of attributes (chmod, utime) counts as a write: fs.watch
 * reports both as "change" (the Python runner watches for both too). Everything is best effort: a watch that cannot be set (inotify limits)
 * leaves those files to the mtime-then-path order, and the watches never keep the process alive.
 */
export class WriteOrder {
  private readonly sequence = new Map<string, number>();
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private next = 0;
  private events = 0;

  constructor(private readonly root: string) {
    this.watchTree('');
  }

  /** The sequence of a file's last write seen, or undefined when none was seen. */
  of(rel: string): number | undefined {
    return this.sequence.get(rel);
  }

  /** Lets queued events arrive (a few turns of the event loop, until one brings none), then stops watching. */
  async settle(): Promise<void> {
    for (let turn = 0; turn < 20; turn += 1) {
      const seen = this.events;
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (turn > 0 && this.events === seen) break;
    }
    this.close();
  }

  close(): void {
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private watchTree(relDir: string): void {
    if (this.watchers.has(relDir)) return;
    const dir = relDir ? path.join(this.root, ...relDir.split('/')) : this.root;
    try {
      const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
        this.events += 1;
        if (typeof name === 'string') this.saw(relDir ? `${relDir}/${name}` : name);
      });
      watcher.on('error', () => watcher.close());
      this.watchers.set(relDir, watcher);
    } catch {
      return; // no watch (inotify limits, a vanished directory): mtime and path order these files
    }
    for (const entry of this.entries(dir)) {
      if (entry.isDirectory()) this.watchTree(relDir ? `${relDir}/${entry.name}` : entry.name);
    }
  }

  private saw(rel: string): void {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(path.join(this.root, ...rel.split('/')));
    } catch {
      return; // removed since: nothing to capture
    }
    if (stat.isDirectory()) {
      if (this.watchers.has(rel)) return;
      // New: watch it, and place what is already in it (written before the watch), oldest first.
      this.watchTree(rel);
      this.place(rel);
    } else if (stat.isFile()) {
      this.sequence.set(rel, this.next++);
    }
  }

  /** Files already under a new directory, in mtime order (then by name), recursively. */
  private place(relDir: string): void {
    const dir = path.join(this.root, ...relDir.split('/'));
    const files: Array<{ rel: string; mtimeNs: bigint }> = [];
    for (const entry of this.entries(dir)) {
      const rel = `${relDir}/${entry.name}`;
      if (entry.isFile()) {
        try {
          files.push({ rel, mtimeNs: fs.lstatSync(path.join(dir, entry.name), { bigint: true }).mtimeNs });
        } catch {
          continue;
        }
      } else if (entry.isDirectory()) {
        this.place(rel);
      }
    }
    files.sort((a, b) => (a.mtimeNs < b.mtimeNs ? -1 : a.mtimeNs > b.mtimeNs ? 1 : a.rel < b.rel ? -1 : 1));
    for (const file of files) if (!this.sequence.has(file.rel)) this.sequence.set(file.rel, this.next++);
  }

  private entries(dir: string): fs.Dirent[] {
    try {
      return fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return [];
    }
  }
}
