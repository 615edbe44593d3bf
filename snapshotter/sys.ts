// The *at(2) family and extended attributes, for code that works relative to directory fds
// (layer apply, tree copy, diff): every name handed to these is one path component under a
// directory fd the caller opened inside its root, so nothing can be redirected elsewhere.
//
// Paths are `string | Buffer`. A string is passed as UTF-8; a Buffer is passed byte for byte
// (a NUL is appended when missing), which is how file names that are not UTF-8 travel: the
// layer code keeps names as "byte strings" (latin1, one char per byte) and turns them into
// Buffers with `bytes()`.
//
// Built on runtime/native's libc loader (`fn`, `check`): loads nothing until first called.
import { check, fn, lastErrno, sysno } from '../runtime/native/libc';
import { SyscallError } from '../runtime/native/errno';
import { makedev } from '../runtime/native/mount';
import { O_CLOEXEC } from '../runtime/native/constants';

export type PathArg = string | Buffer;

const NUL = Buffer.alloc(1);

/** A path as a C string: strings as they are (koffi encodes UTF-8), Buffers NUL-terminated. */
function c(p: PathArg): string | Buffer {
  if (typeof p === 'string') return p;
  return p.length > 0 && p[p.length - 1] === 0 ? p : Buffer.concat([p, NUL]);
}

/** Shows a path in an error message. */
function show(p: PathArg): string {
  const s = typeof p === 'string' ? p : p.toString('utf8').replace(/\0$/, '');
  return JSON.stringify(s);
}

/** A byte string (latin1, one char per byte) as the bytes it stands for. */
export function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Bytes as a byte string (latin1): lossless for names that are not UTF-8. */
export function byteString(b: Buffer): string {
  return b.toString('latin1');
}

/** A byte string made readable for messages (decoded as UTF-8). */
export function printable(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

// ---- open ---------------------------------------------------------------------------------------

const howBuf = Buffer.alloc(24);

/**
 * openat2(2) with a fixed prototype (glibc's syscall() only moves registers, so calling it
 * as non-variadic is sound on x86_64 and aarch64). O_CLOEXEC is always added.
 */
export function openat2(dirfd: number, path: PathArg, flags: number, mode = 0, resolve = 0): number {
  const all = (flags | O_CLOEXEC) >>> 0;
  howBuf.writeBigUInt64LE(BigInt(all), 0);
  howBuf.writeBigUInt64LE(BigInt(all & 0o20000100 ? mode : 0), 8);
  howBuf.writeBigUInt64LE(BigInt(resolve), 16);
  const ret = Number(fn('long syscall(long, int, const char *, void *, size_t)')(sysno('openat2'), dirfd, c(path), howBuf, 24));
  return check(ret, 'openat2', () => `openat2(fd ${dirfd}, ${show(path)}, 0o${all.toString(8)}, resolve 0x${resolve.toString(16)})`, typeof path === 'string' ? path : undefined);
}

// ---- create / remove -------------------------------------------------------------------------------

export function mkdirat(dirfd: number, name: PathArg, mode: number): void {
  check(fn('int mkdirat(int, const char *, uint32_t)')(dirfd, c(name), mode), 'mkdirat', () => `mkdirat(fd ${dirfd}, ${show(name)})`);
}

/** mknodat(2); `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK). */
export function mknodat(dirfd: number, name: PathArg, mode: number, major = 0, minor = 0): void {
  check(
    fn('int mknodat(int, const char *, uint32_t, uint64_t)')(dirfd, c(name), mode >>> 0, makedev(major, minor)),
    'mknodat',
    () => `mknodat(fd ${dirfd}, ${show(name)}, 0o${mode.toString(8)}, ${major}:${minor})`,
  );
}

export function symlinkat(target: PathArg, dirfd: number, name: PathArg): void {
  check(fn('int symlinkat(const char *, int, const char *)')(c(target), dirfd, c(name)), 'symlinkat', () => `symlinkat(${show(target)}, fd ${dirfd}, ${show(name)})`);
}

/** linkat(2); without AT_SYMLINK_FOLLOW a symlink is linked itself, as tar expects. */
export function linkat(olddirfd: number, oldname: PathArg, newdirfd: number, newname: PathArg, flags = 0): void {
  check(
    fn('int linkat(int, const char *, int, const char *, int)')(olddirfd, c(oldname), newdirfd, c(newname), flags),
    'linkat',
    () => `linkat(fd ${olddirfd}, ${show(oldname)}, fd ${newdirfd}, ${show(newname)})`,
  );
}

export function unlinkat(dirfd: number, name: PathArg, flags = 0): void {
  check(fn('int unlinkat(int, const char *, int)')(dirfd, c(name), flags), 'unlinkat', () => `unlinkat(fd ${dirfd}, ${show(name)}${flags & AT_REMOVEDIR ? ', AT_REMOVEDIR' : ''})`);
}

export function renameat(olddirfd: number, oldname: PathArg, newdirfd: number, newname: PathArg): void {
  check(
    fn('int renameat(int, const char *, int, const char *)')(olddirfd, c(oldname), newdirfd, c(newname)),
    'renameat',
    () => `renameat(fd ${olddirfd}, ${show(oldname)}, fd ${newdirfd}, ${show(newname)})`,
  );
}

/** The target of the symlink `name` under `dirfd`, as bytes. */
export function readlinkat(dirfd: number, name: PathArg): Buffer {
  const buf = Buffer.allocUnsafe(4097);
  const n = check(fn('long readlinkat(int, const char *, void *, size_t)')(dirfd, c(name), buf, buf.length), 'readlinkat', () => `readlinkat(fd ${dirfd}, ${show(name)})`);
  return Buffer.from(buf.subarray(0, n));
}

// ---- attributes -------------------------------------------------------------------------------------

/** fchownat(2); pass AT_SYMLINK_NOFOLLOW to change a symlink itself. */
export function fchownat(dirfd: number, name: PathArg, uid: number, gid: number, flags = AT_SYMLINK_NOFOLLOW): void {
  check(fn('int fchownat(int, const char *, uint32_t, uint32_t, int)')(dirfd, c(name), uid >>> 0, gid >>> 0, flags), 'fchownat', () => `fchownat(fd ${dirfd}, ${show(name)}, ${uid}, ${gid})`);
}

let fchmodat2Missing = false;

/**
 * Changes the mode of `name` under `dirfd` without following it if it is a symlink
 * (fchmodat2(2) with AT_SYMLINK_NOFOLLOW, Linux 6.6+; older kernels: fchmodat(2), which follows —
 * callers only use this on entries they just created and know are not symlinks).
 */
export function fchmodatNoFollow(dirfd: number, name: PathArg, mode: number): void {
  if (!fchmodat2Missing) {
    const nr = process.arch === 'arm64' || process.arch === 'x64' ? 452 : -1;
    const ret = Number(fn('long syscall(long, int, const char *, uint32_t, int)')(nr, dirfd, c(name), mode, AT_SYMLINK_NOFOLLOW));
    if (ret >= 0) return;
    const err = new SyscallError('fchmodat2', lastErrno(), `fchmodat2(fd ${dirfd}, ${show(name)}, 0o${mode.toString(8)})`);
    if (err.code !== 'ENOSYS') throw err;
    fchmodat2Missing = true;
  }
  check(fn('int fchmodat(int, const char *, uint32_t, int)')(dirfd, c(name), mode, 0), 'fchmodat', () => `fchmodat(fd ${dirfd}, ${show(name)}, 0o${mode.toString(8)})`);
}

/** A time as seconds and nanoseconds (what utimensat takes; doubles lose the nanoseconds). */
export interface Timespec {
  sec: number;
  nsec: number;
}

/** UTIME_OMIT: leave that time as it is. */
export const OMIT: Timespec = { sec: 0, nsec: 0x3ffffffe };

export function timespecFromNs(ns: bigint): Timespec {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function timespecFromSeconds(s: number): Timespec {
  const sec = Math.floor(s);
  return { sec, nsec: Math.min(999_999_999, Math.round((s - sec) * 1e9)) };
}

const timesBuf = Buffer.alloc(32);

function fillTimes(atime: Timespec, mtime: Timespec): void {
  timesBuf.writeBigInt64LE(BigInt(atime.sec), 0);
  timesBuf.writeBigInt64LE(BigInt(atime.nsec), 8);
  timesBuf.writeBigInt64LE(BigInt(mtime.sec), 16);
  timesBuf.writeBigInt64LE(BigInt(mtime.nsec), 24);
}

/** utimensat(2); by default on a symlink itself rather than its target. */
export function utimensat(dirfd: number, name: PathArg, atime: Timespec, mtime: Timespec, flags = AT_SYMLINK_NOFOLLOW): void {
  fillTimes(atime, mtime);
  check(fn('int utimensat(int, const char *, void *, int)')(dirfd, c(name), timesBuf, flags), 'utimensat', () => `utimensat(fd ${dirfd}, ${show(name)})`);
}

/** futimens(3) on an open fd. */
export function futimens(fd: number, atime: Timespec, mtime: Timespec): void {
  fillTimes(atime, mtime);
  check(fn('int futimens(int, void *)')(fd, timesBuf), 'futimens', () => `futimens(fd ${fd})`);
}

// ---- extended attributes ----------------------------------------------------------------------------

/** lsetxattr(2): on `path` itself, never through a final symlink. */
export function lsetxattr(path: PathArg, name: string, value: Uint8Array, flags = 0): void {
  check(fn('int lsetxattr(const char *, const char *, const void *, size_t, int)')(c(path), name, value, value.length, flags), 'lsetxattr', () => `lsetxattr(${show(path)}, ${JSON.stringify(name)})`);
}

export function fsetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
  check(fn('int fsetxattr(int, const char *, const void *, size_t, int)')(fd, name, value, value.length, flags), 'fsetxattr', () => `fsetxattr(fd ${fd}, ${JSON.stringify(name)})`);
}

function isNoData(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENODATA' || code === 'ENOTSUP' || code === 'EOPNOTSUPP';
}

/** One attribute's value, or undefined when it is absent or the filesystem has none. */
export function lgetxattr(path: PathArg, name: string): Buffer | undefined {
  const f = fn('long lgetxattr(const char *, const char *, void *, size_t)');
  let buf = Buffer.allocUnsafe(256);
  for (;;) {
    const ret = Number(f(c(path), name, buf, buf.length));
    if (ret >= 0) return Buffer.from(buf.subarray(0, ret));
    try {
      check(ret, 'lgetxattr', () => `lgetxattr(${show(path)}, ${JSON.stringify(name)})`);
    } catch (err) {
      if (isNoData(err)) return undefined;
      if ((err as { code?: string }).code !== 'ERANGE') throw err;
      const size = Number(f(c(path), name, null, 0));
      buf = Buffer.allocUnsafe(Math.max(size, buf.length * 2));
    }
  }
}

export function fgetxattr(fd: number, name: string): Buffer | undefined {
  const f = fn('long fgetxattr(int, const char *, void *, size_t)');
  let buf = Buffer.allocUnsafe(256);
  for (;;) {
    const ret = Number(f(fd, name, buf, buf.length));
    if (ret >= 0) return Buffer.from(buf.subarray(0, ret));
    try {
      check(ret, 'fgetxattr', () => `fgetxattr(fd ${fd}, ${JSON.stringify(name)})`);
    } catch (err) {
      if (isNoData(err)) return undefined;
      if ((err as { code?: string }).code !== 'ERANGE') throw err;
      const size = Number(f(fd, name, null, 0));
      buf = Buffer.allocUnsafe(Math.max(size, buf.length * 2));
    }
  }
}

function splitNames(buf: Buffer, n: number): string[] {
  const names: string[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (buf[i] === 0) {
      if (i > start) names.push(buf.toString('utf8', start, i));
      start = i + 1;
    }
  }
  return names;
}

/** The names of `path`'s attributes (not following a final symlink); [] when unsupported. */
export function llistxattr(path: PathArg): string[] {
  const f = fn('long llistxattr(const char *, void *, size_t)');
  let buf = Buffer.allocUnsafe(1024);
  for (;;) {
    const ret = Number(f(c(path), buf, buf.length));
    if (ret >= 0) return splitNames(buf, ret);
    try {
      check(ret, 'llistxattr', () => `llistxattr(${show(path)})`);
    } catch (err) {
      if (isNoData(err)) return [];
      if ((err as { code?: string }).code !== 'ERANGE') throw err;
      const size = Number(f(c(path), null, 0));
      buf = Buffer.allocUnsafe(Math.max(size, buf.length * 2));
    }
  }
}

/** The names of an open file's attributes; [] when unsupported. */
export function flistxattr(fd: number): string[] {
  const f = fn('long flistxattr(int, void *, size_t)');
  let buf = Buffer.allocUnsafe(1024);
  for (;;) {
    const ret = Number(f(fd, buf, buf.length));
    if (ret >= 0) return splitNames(buf, ret);
    try {
      check(ret, 'flistxattr', () => `flistxattr(fd ${fd})`);
    } catch (err) {
      if (isNoData(err)) return [];
      if ((err as { code?: string }).code !== 'ERANGE') throw err;
      const size = Number(f(fd, null, 0));
      buf = Buffer.allocUnsafe(Math.max(size, buf.length * 2));
    }
  }
}

/** Every attribute of an open file with its value. */
export function fgetxattrs(fd: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of flistxattr(fd)) {
    const v = fgetxattr(fd, name);
    if (v !== undefined) out.set(name, v);
  }
  return out;
}

/** Every attribute of `path` (not following a final symlink) with its value. */
export function lgetxattrs(path: PathArg): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of llistxattr(path)) {
    const v = lgetxattr(path, name);
    if (v !== undefined) out.set(name, v);
  }
  return out;
}

// ---- locks ------------------------------------------------------------------------------------------

/** flock(LOCK_EX|LOCK_NB): false when another open file description holds the lock. */
export function tryLockExclusive(fd: number): boolean {
  const ret = fn('int flock(int, int)')(fd, LOCK_EX | LOCK_NB);
  if (ret >= 0) return true;
  try {
    check(ret, 'flock', () => `flock(fd ${fd}, LOCK_EX|LOCK_NB)`);
  } catch (err) {
    if ((err as { code?: string }).code === 'EWOULDBLOCK' || (err as { code?: string }).code === 'EAGAIN') return false;
    throw err;
  }
  return true;
}

export function unlock(fd: number): void {
  fn('int flock(int, int)')(fd, LOCK_UN);
}

/** `/proc/self/fd/<fd>/<name>` as bytes: a path that reaches `name` under the directory fd. */
export function fdPath(dirfd: number, name?: PathArg): Buffer {
  const prefix = Buffer.from(`/proc/self/fd/${dirfd}`);
  if (name === undefined || name.length === 0) return prefix;
  const n = typeof name === 'string' ? Buffer.from(name) : name;
  return Buffer.concat([prefix, Buffer.from('/'), n]);
}
