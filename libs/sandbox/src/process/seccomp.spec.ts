import { buildSeccompFilter, seccompArchOf } from './seccomp';
import { SYSCALL_NUMBERS } from './seccomp-syscalls';

/** Decodes `struct sock_filter[]` and runs it like the kernel would, for one syscall. */
function evaluate(program: Buffer, data: { arch: number; nr: number; args?: number[] }): number {
  const word = (offset: number): number => {
    if (offset === 0) return data.nr >>> 0;
    if (offset === 4) return data.arch >>> 0;
    const index = (offset - 16) / 8;
    return (data.args?.[index] ?? 0) >>> 0;
  };
  let acc = 0;
  for (let pc = 0; pc < program.length / 8; ) {
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    if (code === 0x20) acc = word(k);
    else if (code === 0x06) return k;
    else {
      const taken = code === 0x15 ? acc === k : code === 0x35 ? acc >= k : (acc & k) !== 0;
      pc += 1 + (taken ? jt : jf);
      continue;
    }
    pc += 1;
  }
  throw new Error('fell off the end of the program');
}

const X86_64 = 0xc000003e;
const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;
const nr = SYSCALL_NUMBERS.x86_64;

describe('buildSeccompFilter (x86_64)', () => {
  const program = buildSeccompFilter('x86_64');

  it.each(['ptrace', 'mount', 'unshare', 'setns', 'bpf', 'keyctl', 'io_uring_setup', 'kexec_load', 'init_module'])('denies %s with EPERM', (name) => {
    expect(evaluate(program, { arch: X86_64, nr: nr[name]! })).toBe(EPERM);
  });

  it('allows ordinary calls, and clone without namespace flags', () => {
    expect(evaluate(program, { arch: X86_64, nr: 0 })).toBe(ALLOW); // read
    expect(evaluate(program, { arch: X86_64, nr: nr.clone!, args: [0x11] })).toBe(ALLOW); // fork-like SIGCHLD
    expect(evaluate(program, { arch: X86_64, nr: nr.clone!, args: [0x003d0f00] })).toBe(ALLOW); // pthread_create flags
  });

  it('denies clone with a namespace flag, and answers clone3 with ENOSYS so libc falls back to clone', () => {
    expect(evaluate(program, { arch: X86_64, nr: nr.clone!, args: [0x10000000 | 0x11] })).toBe(EPERM);
    expect(evaluate(program, { arch: X86_64, nr: nr.clone3! })).toBe(0x00050000 | 38);
  });

  it('denies TIOCSTI and odd personalities, allows the personality query', () => {
    expect(evaluate(program, { arch: X86_64, nr: nr.ioctl!, args: [0, 0x5412] })).toBe(EPERM);
    expect(evaluate(program, { arch: X86_64, nr: nr.ioctl!, args: [0, 0x5401] })).toBe(ALLOW);
    expect(evaluate(program, { arch: X86_64, nr: nr.personality!, args: [0x0040000] })).toBe(EPERM);
    expect(evaluate(program, { arch: X86_64, nr: nr.personality!, args: [0xffffffff] })).toBe(ALLOW);
  });

  it('opens only unix, inet, inet6 and netlink sockets (no vsock, alg or packet)', () => {
    for (const family of [1, 2, 10, 16]) expect(evaluate(program, { arch: X86_64, nr: nr.socket!, args: [family] })).toBe(ALLOW);
    for (const family of [40, 38, 17]) expect(evaluate(program, { arch: X86_64, nr: nr.socket!, args: [family] })).toBe(EPERM);
    expect(evaluate(program, { arch: X86_64, nr: nr.socketpair!, args: [40] })).toBe(EPERM);
    expect(evaluate(program, { arch: X86_64, nr: nr.socketpair!, args: [1] })).toBe(ALLOW);
  });

  it('kills other ABIs and denies x32 numbers', () => {
    expect(evaluate(program, { arch: 0x40000003, nr: 0 })).toBe(0x80000000);
    expect(evaluate(program, { arch: X86_64, nr: 0x40000000 + 39 })).toBe(EPERM);
  });
});

describe('seccompArchOf', () => {
  it('maps Node architectures', () => {
    expect(seccompArchOf('x64')).toBe('x86_64');
    expect(seccompArchOf('arm64')).toBe('aarch64');
    expect(seccompArchOf('ia32')).toBeUndefined();
    expect(buildSeccompFilter('aarch64').length % 8).toBe(0);
  });
});
