// File descriptors and paths: fcntl(2) flags, dup3(2), close_range(2), openat2(2) with its
// RESOLVE_* scoping, eventfd(2), and the per-thread fs state (chdir/fchdir/chroot/umask) that
// Node's process.* versions cannot change from a worker thread.
//
// The fds returned are plain numbers usable with Node's fs.*Sync(fd) calls and fs.closeSync.
import * as fs from 'fs';
import { check, fn, q, syscall, sysno } from './libc';
import {
  AT_FDCWD,
  FD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_NONBLOCK,
  O_PATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
} from './constants';

// ---- fcntl ------------------------------------------------------------------------------------------

function fcntlGet(fd: number, cmd: number, name: string): number {
  return check(fn('int fcntl(int, int, ...)')(fd, cmd), 'fcntl', () => `fcntl(${fd}, ${name})`);
}

function fcntlSet(fd: number, cmd: number, name: string, value: number): void {
  check(fn('int fcntl(int, int, ...)')(fd, cmd, 'int', value), 'fcntl', () => `fcntl(${fd}, ${name}, 0x${value.toString(16)})`);
}

export function isCloexec(fd: number): boolean {
  return (fcntlGet(fd, F_GETFD, 'F_GETFD') & FD_CLOEXEC) !== 0;
}

/** Set or clear FD_CLOEXEC. */
export function setCloexec(fd: number, on: boolean): void {
  const flags = fcntlGet(fd, F_GETFD, 'F_GETFD');
  const next = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (next !== flags) fcntlSet(fd, F_SETFD, 'F_SETFD', next);
}

export function isNonblock(fd: number): boolean {
  return (fcntlGet(fd, F_GETFL, 'F_GETFL') & O_NONBLOCK) !== 0;
}

/** Set or clear O_NONBLOCK (a property of the open file description, shared by dup'd fds). */
export function setNonblock(fd: number, on: boolean): void {
  const flags = fcntlGet(fd, F_GETFL, 'F_GETFL');
  const next = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (next !== flags) fcntlSet(fd, F_SETFL, 'F_SETFL', next);
}

/**
 * Makes an fd fit to hand to an exec'd program: clears FD_CLOEXEC and O_NONBLOCK, both of which
 * Node sets on its stdio.
 */
export function inheritable(fd: number): void {
  setCloexec(fd, false);
  setNonblock(fd, false);
}

/** dup3(2): `newfd` becomes a copy of `oldfd` (flags: O_CLOEXEC or 0). */
export function dup3(oldfd: number, newfd: number, flags = 0): number {
  return check(fn('int dup3(int, int, int)')(oldfd, newfd, flags), 'dup3', () => `dup3(${oldfd}, ${newfd})`);
}

/** close_range(2) (Linux 5.9+): close, or with CLOSE_RANGE_CLOEXEC mark, fds first..last. */
export function closeRange(first: number, last = 0xffffffff, flags = 0): void {
  check(
    syscall(sysno('close_range'), 'uint', first, 'uint', last >>> 0, 'uint', flags),
    'close_range',
    () => `close_range(${first}, ${last}, 0x${flags.toString(16)})`,
  );
}

/** O_TMPFILE without its O_DIRECTORY part */
const O_TMPFILE_BIT = 0o20000000;

// ---- openat2 ------------------------------------------------------------------------------------------

export interface OpenHow {
  /** open(2) flags; O_CLOEXEC is added unless `inherit` is set */
  flags: number;
  mode?: number;
  /** RESOLVE_* flags */
  resolve?: number;
  inherit?: boolean;
}

/**
 * openat2(2) (Linux 5.6+). `dirfd` is an fd or AT_FDCWD. With RESOLVE_IN_ROOT, `path` (even an
 * absolute one, and every symlink met on the way) is resolved as if `dirfd` were "/", so a
 * symlink to /etc inside a container root resolves to <root>/etc.
 */
export function openat2(dirfd: number, path: string, how: OpenHow): number {
  const flags = how.inherit ? how.flags : how.flags | O_CLOEXEC;
  const buf = Buffer.alloc(24);
  buf.writeBigUInt64LE(BigInt(flags >>> 0), 0);
  // the kernel refuses a mode unless the call can create a file
  const creates = (flags & (O_CREAT | O_TMPFILE_BIT)) !== 0;
  buf.writeBigUInt64LE(BigInt(creates ? (how.mode ?? 0) : 0), 8);
  buf.writeBigUInt64LE(BigInt(how.resolve ?? 0), 16);
  const ret = syscall(sysno('openat2'), 'int', dirfd, 'const char *', path, 'void *', buf, 'size_t', buf.length);
  return check(ret, 'openat2', () => `openat2(${dirfd === AT_FDCWD ? 'AT_FDCWD' : `fd ${dirfd}`}, ${q(path)}, resolve 0x${(how.resolve ?? 0).toString(16)})`, path);
}

/**
 * Opens `path` inside the directory tree `root` (a path or an open directory fd) with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: no `..`, absolute path or symlink can leave it.
 * `mode` applies when `flags` include O_CREAT.
 */
export function openInRoot(root: string | number, path: string, flags: number, mode = 0o644, extraResolve = 0): number {
  const rootFd = typeof root === 'number' ? root : fs.openSync(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    return openat2(rootFd, path, { flags, mode, resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extraResolve });
  } finally {
    if (typeof root !== 'number') fs.closeSync(rootFd);
  }
}

// ---- eventfd --------------------------------------------------------------------------------------

/** eventfd(2); flags EFD_CLOEXEC | EFD_NONBLOCK. Read it with an 8-byte fs.readSync. */
export function eventfd(initval = 0, flags = O_CLOEXEC): number {
  return check(fn('int eventfd(unsigned int, int)')(initval, flags), 'eventfd');
}

// ---- per-thread fs state ------------------------------------------------------------------------

/** chdir(2) of the calling thread's fs state (process-wide unless CLONE_FS was unshared). */
export function chdir(path: string): void {
  check(fn('int chdir(const char *)')(path), 'chdir', () => `chdir(${q(path)})`, path);
}

export function fchdir(fd: number): void {
  check(fn('int fchdir(int)')(fd), 'fchdir', () => `fchdir(${fd})`);
}

export function chroot(path: string): void {
  check(fn('int chroot(const char *)')(path), 'chroot', () => `chroot(${q(path)})`, path);
}

/** umask(2); returns the previous mask. */
export function umask(mask: number): number {
  return fn('uint32_t umask(uint32_t)')(mask);
}
