import { closeSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** `O_CLOEXEC` as /proc/<pid>/fdinfo prints it (octal `flags`), the same on x86-64 and arm64. */
const O_CLOEXEC = 0o2000000;

/** A descriptor that every process this one starts would inherit. */
export interface InheritedDescriptor {
  fd: number;
  /** What it points to (`readlink /proc/self/fd/<fd>`): a path, `pipe:[…]`, `socket:[…]`. */
  target: string;
}

/**
 * Descriptors of this process, above stderr, that are open without close-on-exec. Node and libuv
 * open everything close-on-exec, so these came from whatever started the process (a shell
 * redirect, a supervisor, a test runner's pipe) and would pass through the launch chain and
 * bubblewrap (neither closes descriptors) into every sandbox: a file, or a directory through which
 * the code could read the host's whole filesystem.
 */
export function inheritedDescriptors(fdDir = '/proc/self/fd', fdinfoDir = '/proc/self/fdinfo'): InheritedDescriptor[] {
  const found: InheritedDescriptor[] = [];
  for (const entry of readdirSync(fdDir)) {
    const fd = Number(entry);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`${fdinfoDir}/${fd}`, 'utf8'))?.[1];
      if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
      found.push({ fd, target: readlinkSync(`${fdDir}/${fd}`) });
    } catch {
      // Closed meanwhile (the directory listing's own descriptor is one).
    }
  }
  return found;
}

/**
 * Closes every descriptor `inheritedDescriptors` finds, except Node's IPC channel (close-on-exec
 * already, but never this process's to close), and returns what it closed. Done once, before the
 * first sandbox starts: Node opens nothing inheritable afterwards.
 */
export function closeInheritedDescriptors(): InheritedDescriptor[] {
  const channel = (process as { channel?: { fd?: unknown } }).channel?.fd;
  const closed: InheritedDescriptor[] = [];
  for (const descriptor of inheritedDescriptors()) {
    if (descriptor.fd === channel) continue;
    try {
      closeSync(descriptor.fd);
      closed.push(descriptor);
    } catch {
      // Already closed.
    }
  }
  return closed;
}
