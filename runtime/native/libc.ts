// The single libc handle, loaded on first use, and the helpers every binding shares.
//
// Nothing native is loaded when this module is imported: koffi and libc.so.6 are opened the
// first time a binding is called, and each function is declared on its first call and cached.
// Declarations use only primitive types and `void *` (structs travel as Buffers), so no koffi
// type names are registered: the module can be loaded again in another realm (jest, workers)
// without clashing.
import type { IKoffiLib } from 'koffi';
import { SyscallError } from './errno';

type Koffi = typeof import('koffi');
type KoffiFunction = ReturnType<IKoffiLib['func']>;

let koffiModule: Koffi | undefined;
let libcHandle: IKoffiLib | undefined;
const declared = new Map<string, KoffiFunction>();

/**
 * The koffi module, required on first use: its prebuilt native module for this platform when
 * there is one of koffi's own version, else the package entry. The entry finds the native module
 * through a bundled installer toolkit that loads node:https and more, ~7 ms of CPU in every V8
 * isolate that uses koffi (a berth-shim starts three); the API is the same native object.
 */
export function ffi(): Koffi {
  return (koffiModule ??= loadKoffi());
}

function loadKoffi(): Koffi {
  /* eslint-disable @typescript-eslint/no-require-imports */
  try {
    const native = require(`koffi/build/koffi/${process.platform}_${process.arch}/koffi.node`) as Koffi & { version?: string };
    if (native.version === (require('koffi/package.json') as { version: string }).version) return native;
  } catch {
    // no prebuilt module for this platform (musl, a source build): the entry knows where to look
  }
  return require('koffi') as Koffi;
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/** The libc.so.6 handle, opened on first use. */
export function libc(): IKoffiLib {
  return (libcHandle ??= ffi().load('libc.so.6'));
}

/**
 * A libc function from its C prototype, declared once and cached:
 * `fn('int unshare(int)')(flags)`. Variadic prototypes (`...`) take type/value pairs for the
 * variadic part, as koffi expects.
 */
export function fn(prototype: string): KoffiFunction {
  let f = declared.get(prototype);
  if (!f) {
    f = libc().func(prototype);
    declared.set(prototype, f);
  }
  return f;
}

/** errno as left by the last native call on this thread. */
export function lastErrno(): number {
  return ffi().errno();
}

/**
 * Returns `ret` when the call succeeded (ret >= 0); otherwise throws a SyscallError carrying
 * errno. `call` renders the call for the message and is only evaluated on failure.
 */
export function check(ret: number | bigint, syscall: string, call?: () => string, path?: string): number {
  if (ret < 0) {
    const errno = lastErrno();
    throw new SyscallError(syscall, errno, call ? call() : undefined, path);
  }
  return Number(ret);
}

/** Quote a value for an error message the way the C call would be written. */
export function q(value: string | null | undefined): string {
  return value == null ? 'NULL' : JSON.stringify(value);
}

// ---- raw system calls ---------------------------------------------------------------------------

interface SyscallNumbers {
  gettid: number;
  tgkill: number;
  setgroups: number;
  setresuid: number;
  setresgid: number;
  pivot_root: number;
  pidfd_open: number;
  pidfd_send_signal: number;
  openat2: number;
  close_range: number;
  mount_setattr: number;
}

const SYSCALLS: Record<string, SyscallNumbers> = {
  x64: {
    gettid: 186,
    tgkill: 234,
    setgroups: 116,
    setresuid: 117,
    setresgid: 119,
    pivot_root: 155,
    pidfd_open: 434,
    pidfd_send_signal: 424,
    openat2: 437,
    close_range: 436,
    mount_setattr: 442,
  },
  arm64: {
    gettid: 178,
    tgkill: 131,
    setgroups: 159,
    setresuid: 147,
    setresgid: 149,
    pivot_root: 41,
    pidfd_open: 434,
    pidfd_send_signal: 424,
    openat2: 437,
    close_range: 436,
    mount_setattr: 442,
  },
};

/** System call numbers for this architecture (x86_64 and aarch64 are supported). */
export function sysno(name: keyof SyscallNumbers): number {
  const table = SYSCALLS[process.arch];
  if (!table) throw new Error(`berth native: unsupported architecture ${process.arch} (x64 and arm64 are supported)`);
  return table[name];
}

/**
 * syscall(2) with integer/pointer arguments given as koffi type/value pairs, e.g.
 * `syscall(sysno('pidfd_open'), 'int', pid, 'uint', 0)`. Returns the raw result (-1 on error).
 */
export function syscall(nr: number, ...typedArgs: unknown[]): number {
  return Number(fn('long syscall(long, ...)')(nr, ...typedArgs));
}
