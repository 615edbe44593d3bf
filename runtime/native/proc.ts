// Processes and credentials: ids, signals, pidfds, prctl(2), resource limits, uids/gids/groups,
// setsid(2) and execve(2).
import * as os from 'os';
import { check, fn, lastErrno, q, syscall, sysno } from './libc';
import {
  PR_GET_CHILD_SUBREAPER,
  PR_GET_NO_NEW_PRIVS,
  PR_GET_PDEATHSIG,
  PR_SET_CHILD_SUBREAPER,
  PR_SET_DUMPABLE,
  PR_SET_KEEPCAPS,
  PR_SET_NAME,
  PR_SET_NO_NEW_PRIVS,
  PR_SET_PDEATHSIG,
  RLIMITS,
} from './constants';
import { SyscallError } from './errno';

const PR_NAMES: Readonly<Record<number, string>> = {
  1: 'PR_SET_PDEATHSIG',
  4: 'PR_SET_DUMPABLE',
  8: 'PR_SET_KEEPCAPS',
  15: 'PR_SET_NAME',
  23: 'PR_CAPBSET_READ',
  24: 'PR_CAPBSET_DROP',
  36: 'PR_SET_CHILD_SUBREAPER',
  38: 'PR_SET_NO_NEW_PRIVS',
  39: 'PR_GET_NO_NEW_PRIVS',
  47: 'PR_CAP_AMBIENT',
};

// ---- ids ------------------------------------------------------------------------------------------

export function getpid(): number {
  return fn('int getpid(void)')();
}

/** The kernel id of the calling thread (equal to getpid() on the main thread). */
export function gettid(): number {
  return syscall(sysno('gettid'));
}

// ---- signals ----------------------------------------------------------------------------------------

function signalNumber(sig: number | NodeJS.Signals): number {
  if (typeof sig === 'number') return sig;
  const n = os.constants.signals[sig];
  if (n === undefined) throw new Error(`unknown signal ${q(sig)}`);
  return n;
}

/** kill(2). Signal 0 checks that the process exists. */
export function kill(pid: number, sig: number | NodeJS.Signals = 'SIGTERM'): void {
  const n = signalNumber(sig);
  check(fn('int kill(int, int)')(pid, n), 'kill', () => `kill(${pid}, ${sig})`);
}

/** tgkill(2): signal one thread of a thread group. */
export function tgkill(tgid: number, tid: number, sig: number | NodeJS.Signals): void {
  const n = signalNumber(sig);
  check(syscall(sysno('tgkill'), 'int', tgid, 'int', tid, 'int', n), 'tgkill', () => `tgkill(${tgid}, ${tid}, ${sig})`);
}

/** pidfd_open(2) (Linux 5.3+): a file descriptor that refers to process `pid`. */
export function pidfdOpen(pid: number, flags = 0): number {
  return check(syscall(sysno('pidfd_open'), 'int', pid, 'uint', flags), 'pidfd_open', () => `pidfd_open(${pid})`);
}

/** pidfd_send_signal(2) (Linux 5.1+): signal a process through its pidfd, immune to pid reuse. */
export function pidfdSendSignal(pidfd: number, sig: number | NodeJS.Signals, flags = 0): void {
  const n = signalNumber(sig);
  check(
    syscall(sysno('pidfd_send_signal'), 'int', pidfd, 'int', n, 'void *', null, 'uint', flags),
    'pidfd_send_signal',
    () => `pidfd_send_signal(fd ${pidfd}, ${sig})`,
  );
}

// ---- prctl ------------------------------------------------------------------------------------------

/** prctl(2) with up to four integer arguments; returns the call's result. */
export function prctl(option: number, arg2: number | bigint = 0, arg3: number | bigint = 0, arg4: number | bigint = 0, arg5: number | bigint = 0): number {
  const ret = fn('int prctl(int, ...)')(
    option,
    'unsigned long',
    arg2,
    'unsigned long',
    arg3,
    'unsigned long',
    arg4,
    'unsigned long',
    arg5,
  );
  return check(ret, 'prctl', () => `prctl(${PR_NAMES[option] ?? option}, ${arg2})`);
}

/** PR_SET_NO_NEW_PRIVS: execve() can no longer grant privileges (setuid bits, file caps). */
export function setNoNewPrivs(): void {
  prctl(PR_SET_NO_NEW_PRIVS, 1);
}

export function getNoNewPrivs(): boolean {
  return prctl(PR_GET_NO_NEW_PRIVS) === 1;
}

/** PR_SET_PDEATHSIG: the signal this thread's process gets when the thread that forked it dies. */
export function setPdeathsig(sig: number | NodeJS.Signals): void {
  prctl(PR_SET_PDEATHSIG, signalNumber(sig));
}

/** prctl options that return their value through an int pointer (PR_GET_PDEATHSIG, …). */
function prctlGetInt(option: number, name: string): number {
  const out = Buffer.alloc(4);
  check(fn('int prctl(int, ...)')(option, 'void *', out), 'prctl', () => `prctl(${name})`);
  return out.readInt32LE(0);
}

export function getPdeathsig(): number {
  return prctlGetInt(PR_GET_PDEATHSIG, 'PR_GET_PDEATHSIG');
}

export function isChildSubreaper(): boolean {
  return prctlGetInt(PR_GET_CHILD_SUBREAPER, 'PR_GET_CHILD_SUBREAPER') !== 0;
}

/** PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented to this process. */
export function setChildSubreaper(on = true): void {
  prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0);
}

/** PR_SET_KEEPCAPS: keep permitted capabilities across a change away from uid 0. */
export function setKeepCaps(on = true): void {
  prctl(PR_SET_KEEPCAPS, on ? 1 : 0);
}

export function setDumpable(on: boolean): void {
  prctl(PR_SET_DUMPABLE, on ? 1 : 0);
}

/** PR_SET_NAME: the calling thread's name (comm), at most 15 bytes. */
export function setThreadName(name: string): void {
  const buf = Buffer.alloc(16);
  buf.write(name.slice(0, 15));
  check(fn('int prctl(int, ...)')(PR_SET_NAME, 'void *', buf), 'prctl', () => `prctl(PR_SET_NAME, ${q(name)})`);
}

// ---- resource limits -----------------------------------------------------------------------------

/** A resource limit; `Infinity` stands for RLIM_INFINITY. */
export interface Rlimit {
  soft: number;
  hard: number;
}

/** The number of an rlimit by name ("RLIMIT_NOFILE" or "NOFILE", any case). */
export function rlimitFromName(name: string): number {
  const upper = name.toUpperCase();
  const n = RLIMITS[upper.startsWith('RLIMIT_') ? upper : 'RLIMIT_' + upper];
  if (n === undefined) throw new Error(`unknown resource limit ${q(name)}`);
  return n;
}

function rlimitName(resource: number): string {
  return Object.keys(RLIMITS).find((k) => RLIMITS[k] === resource) ?? String(resource);
}

const RLIM_INFINITY = 0xffffffffffffffffn;

function toRlim(v: number | bigint): bigint {
  if (typeof v === 'bigint') return v >= RLIM_INFINITY ? RLIM_INFINITY : v;
  if (!Number.isFinite(v) || v >= 2 ** 64 - 1) return RLIM_INFINITY;
  return BigInt(Math.max(0, Math.floor(v)));
}

function fromRlim(v: bigint): number {
  return v === RLIM_INFINITY ? Infinity : Number(v);
}

function prlimit(pid: number, resource: number, limit: { soft: number | bigint; hard: number | bigint } | null): Rlimit {
  const oldBuf = Buffer.alloc(16);
  let newBuf: Buffer | null = null;
  if (limit) {
    newBuf = Buffer.alloc(16);
    newBuf.writeBigUInt64LE(toRlim(limit.soft), 0);
    newBuf.writeBigUInt64LE(toRlim(limit.hard), 8);
  }
  check(fn('int prlimit(int, int, void *, void *)')(pid, resource, newBuf, oldBuf), 'prlimit', () =>
    limit
      ? `setrlimit(${rlimitName(resource)}, soft ${limit.soft}, hard ${limit.hard}${pid ? `, pid ${pid}` : ''})`
      : `getrlimit(${rlimitName(resource)}${pid ? `, pid ${pid}` : ''})`,
  );
  return { soft: fromRlim(oldBuf.readBigUInt64LE(0)), hard: fromRlim(oldBuf.readBigUInt64LE(8)) };
}

/** getrlimit(2) (via prlimit(2); pid 0 is the calling process). */
export function getrlimit(resource: number | string, pid = 0): Rlimit {
  return prlimit(pid, typeof resource === 'string' ? rlimitFromName(resource) : resource, null);
}

/**
 * setrlimit(2) (via prlimit(2); pid 0 is the calling process). Raising a hard limit needs
 * CAP_SYS_RESOURCE. Returns the previous limit.
 */
export function setrlimit(resource: number | string, limit: { soft: number | bigint; hard: number | bigint }, pid = 0): Rlimit {
  return prlimit(pid, typeof resource === 'string' ? rlimitFromName(resource) : resource, limit);
}

// ---- credentials ---------------------------------------------------------------------------------

/**
 * Whose credentials change: 'thread' uses the raw system calls, which change the calling
 * thread only (what the init stage running in a worker thread needs); 'process' goes through
 * glibc, which applies the change to every thread of the process.
 */
export type CredScope = 'thread' | 'process';

/** setgroups(2): the supplementary groups. */
export function setgroups(gids: readonly number[], scope: CredScope = 'thread'): void {
  const buf = Buffer.alloc(Math.max(4, gids.length * 4));
  gids.forEach((g, i) => buf.writeUInt32LE(g >>> 0, i * 4));
  const ret =
    scope === 'thread'
      ? syscall(sysno('setgroups'), 'size_t', gids.length, 'void *', buf)
      : fn('int setgroups(size_t, void *)')(gids.length, buf);
  check(ret, 'setgroups', () => `setgroups([${gids.join(', ')}])`);
}

/** setresuid(2); -1 leaves an id unchanged. */
export function setresuid(ruid: number, euid: number, suid: number, scope: CredScope = 'thread'): void {
  const ret =
    scope === 'thread'
      ? syscall(sysno('setresuid'), 'int', ruid, 'int', euid, 'int', suid)
      : fn('int setresuid(int, int, int)')(ruid, euid, suid);
  check(ret, 'setresuid', () => `setresuid(${ruid}, ${euid}, ${suid})`);
}

/** setresgid(2); -1 leaves an id unchanged. */
export function setresgid(rgid: number, egid: number, sgid: number, scope: CredScope = 'thread'): void {
  const ret =
    scope === 'thread'
      ? syscall(sysno('setresgid'), 'int', rgid, 'int', egid, 'int', sgid)
      : fn('int setresgid(int, int, int)')(rgid, egid, sgid);
  check(ret, 'setresgid', () => `setresgid(${rgid}, ${egid}, ${sgid})`);
}

/** setsid(2): a new session and process group led by the caller; returns the session id. */
export function setsid(): number {
  return check(fn('int setsid(void)')(), 'setsid');
}

/**
 * execve(2). Only returns by throwing. The caller is responsible for the state the new
 * program inherits: clear FD_CLOEXEC/O_NONBLOCK on the fds it should keep (Node sets both on
 * 0–2), and remember that every other thread of a multi-threaded process is killed by exec.
 */
export function execve(path: string, argv: readonly string[], env: readonly string[]): never {
  fn('int execve(const char *, const char **, const char **)')(path, [...argv, null], [...env, null]);
  throw new SyscallError('execve', lastErrno(), `execve(${q(path)})`, path);
}
