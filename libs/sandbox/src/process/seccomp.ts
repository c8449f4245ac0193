import { SYSCALL_NUMBERS } from './seccomp-syscalls';

/**
 * Pure builder of the process sandbox's seccomp filter: a classic BPF program that bubblewrap
 * loads with `--seccomp FD` before it execs the runner. It blocks what runc's default profile
 * blocks for a container without capabilities (kernel modules, mounts, namespaces, ptrace, keyring,
 * bpf, perf, io_uring, clock changes, socket families other than unix, inet, inet6 and netlink,
 * ...), so a kernel bug behind one of those calls is out of
 * reach of tenant code. Everything else is allowed: the filter narrows the kernel's attack
 * surface; the namespaces, uids and limits are what contain the code.
 *
 * Written out here rather than generated with libseccomp so that the worker needs no native
 * build step; the syscall numbers come from the kernel headers (`seccomp-syscalls.ts`), and
 * `process/seccomp.spec.ts` loads the program into a real bubblewrap sandbox.
 */

export type SeccompArch = keyof typeof SYSCALL_NUMBERS;

/** Denied with EPERM, as runc's default profile does. */
export const BLOCKED_SYSCALLS = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module', 'fanotify_init',
  'finit_module', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms', 'init_module', 'io_uring_enter',
  'io_uring_register', 'io_uring_setup', 'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load', 'keyctl',
  'lookup_dcookie', 'mount', 'mount_setattr', 'move_mount', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at',
  'open_tree', 'perf_event_open', 'pidfd_getfd', 'pivot_root', 'process_vm_readv', 'process_vm_writev', 'ptrace',
  'query_module', 'quotactl', 'quotactl_fd', 'reboot', 'request_key', 'setns', 'settimeofday', 'swapoff', 'swapon',
  'syslog', 'sysfs', '_sysctl', 'umount2', 'unshare', 'uselib', 'userfaultfd', 'ustat', 'vhangup',
] as const;

/** clone(2) flags that create namespaces; clone with any of them is denied. */
export const NAMESPACE_CLONE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;
/** ioctls that push input into a terminal or the console (TIOCSTI, TIOCLINUX). */
export const BLOCKED_IOCTLS = [0x5412, 0x541c] as const;
/**
 * Socket families a sandbox may open (`socket`, `socketpair`): AF_UNIX, AF_INET, AF_INET6 and
 * AF_NETLINK, as runc, containerd and moby allow. Others are refused: AF_VSOCK reaches the
 * hypervisor whatever the network namespace, AF_ALG is kernel crypto, AF_PACKET raw frames.
 */
export const ALLOWED_SOCKET_FAMILIES = [1, 2, 10, 16] as const;
/** personality(2) values runc allows (Linux, Linux32 and their UNAME26 forms, and the query). */
export const ALLOWED_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff] as const;

const AUDIT_ARCH: Record<SeccompArch, number> = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };
/** x86-64 syscalls with this bit are the x32 ABI: the same kernel code under other numbers. */
const X32_SYSCALL_BIT = 0x40000000;

const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;

// struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian: low word first).
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const argLow = (index: number): number => 16 + 8 * index;

// Classic BPF opcodes.
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

type Label = 'allow' | 'eperm' | 'enosys' | 'kill' | 'clone' | 'ioctl' | 'personality' | 'socket';
type Insn =
  | { op: 'ld'; offset: number }
  | { op: 'jeq' | 'jge' | 'jset'; k: number; jt: Label | 'next'; jf: Label | 'next' }
  | { op: 'ret'; k: number }
  | { op: 'label'; name: Label };

/** The node's architecture in the filter's terms, or `undefined` when the filter has no table for it. */
export function seccompArchOf(nodeArch: string): SeccompArch | undefined {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  return undefined;
}

/** The filter as the bytes of `struct sock_filter[]`, in the host's (little-endian) byte order. */
export function buildSeccompFilter(arch: SeccompArch): Buffer {
  return assemble(filterProgram(arch));
}

function filterProgram(arch: SeccompArch): Insn[] {
  const numbers = SYSCALL_NUMBERS[arch];
  const program: Insn[] = [
    // A syscall of another ABI (i386 int 0x80, arm32) would be read with the wrong numbers: kill.
    { op: 'ld', offset: OFFSET_ARCH },
    { op: 'jeq', k: AUDIT_ARCH[arch], jt: 'next', jf: 'kill' },
    { op: 'ld', offset: OFFSET_NR },
  ];
  if (arch === 'x86_64') program.push({ op: 'jge', k: X32_SYSCALL_BIT, jt: 'eperm', jf: 'next' });
  for (const name of BLOCKED_SYSCALLS) {
    const nr = numbers[name];
    if (nr !== undefined) program.push({ op: 'jeq', k: nr, jt: 'eperm', jf: 'next' });
  }
  // ENOSYS makes libc fall back to clone(2), whose flags a filter can read (clone3 passes a pointer).
  if (numbers.clone3 !== undefined) program.push({ op: 'jeq', k: numbers.clone3, jt: 'enosys', jf: 'next' });
  program.push(
    { op: 'jeq', k: numbers.clone!, jt: 'clone', jf: 'next' },
    { op: 'jeq', k: numbers.ioctl!, jt: 'ioctl', jf: 'next' },
    { op: 'jeq', k: numbers.personality!, jt: 'personality', jf: 'next' },
    { op: 'jeq', k: numbers.socket!, jt: 'socket', jf: 'next' },
    { op: 'jeq', k: numbers.socketpair!, jt: 'socket', jf: 'next' },
    { op: 'ret', k: RET_ALLOW },
    { op: 'label', name: 'clone' },
    // The kernel reads clone's flags and ioctl's request as 32-bit values: the low words are the whole truth.
    { op: 'ld', offset: argLow(0) },
    { op: 'jset', k: NAMESPACE_CLONE_FLAGS, jt: 'eperm', jf: 'allow' },
    { op: 'label', name: 'ioctl' },
    { op: 'ld', offset: argLow(1) },
    ...BLOCKED_IOCTLS.map((k): Insn => ({ op: 'jeq', k, jt: 'eperm', jf: 'next' })),
    { op: 'ret', k: RET_ALLOW },
    { op: 'label', name: 'socket' },
    { op: 'ld', offset: argLow(0) },
    ...ALLOWED_SOCKET_FAMILIES.map((k): Insn => ({ op: 'jeq', k, jt: 'allow', jf: 'next' })),
    { op: 'ret', k: RET_ERRNO | EPERM },
    { op: 'label', name: 'personality' },
    { op: 'ld', offset: argLow(0) },
    ...ALLOWED_PERSONALITIES.map((k): Insn => ({ op: 'jeq', k, jt: 'allow', jf: 'next' })),
    { op: 'label', name: 'eperm' },
    { op: 'ret', k: RET_ERRNO | EPERM },
    { op: 'label', name: 'enosys' },
    { op: 'ret', k: RET_ERRNO | ENOSYS },
    { op: 'label', name: 'kill' },
    { op: 'ret', k: RET_KILL_PROCESS },
    { op: 'label', name: 'allow' },
    { op: 'ret', k: RET_ALLOW },
  );
  return program;
}

/** Resolves labels to jump offsets (classic BPF jumps only forward, at most 255 instructions) and encodes. */
function assemble(program: Insn[]): Buffer {
  const positions = new Map<Label, number>();
  const code: Exclude<Insn, { op: 'label' }>[] = [];
  for (const insn of program) {
    if (insn.op === 'label') positions.set(insn.name, code.length);
    else code.push(insn);
  }
  const out = Buffer.alloc(code.length * 8);
  code.forEach((insn, index) => {
    const offsetTo = (target: Label | 'next'): number => {
      if (target === 'next') return 0;
      const distance = positions.get(target)! - index - 1;
      if (distance < 0 || distance > 255) throw new Error(`seccomp: jump to ${target} at ${index} is out of range (${distance})`);
      return distance;
    };
    let opcode: number;
    let jt = 0;
    let jf = 0;
    let k: number;
    if (insn.op === 'ld') {
      opcode = LD_W_ABS;
      k = insn.offset;
    } else if (insn.op === 'ret') {
      opcode = RET_K;
      k = insn.k;
    } else {
      opcode = insn.op === 'jeq' ? JEQ_K : insn.op === 'jge' ? JGE_K : JSET_K;
      jt = offsetTo(insn.jt);
      jf = offsetTo(insn.jf);
      k = insn.k;
    }
    out.writeUInt16LE(opcode, index * 8);
    out.writeUInt8(jt, index * 8 + 2);
    out.writeUInt8(jf, index * 8 + 3);
    out.writeUInt32LE(k >>> 0, index * 8 + 4);
  });
  return out;
}
