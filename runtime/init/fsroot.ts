// Paths inside a container's root, resolved without ever leaving it.
//
// Every lookup goes through openat2(2) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS relative to an
// fd of the root: `..`, absolute paths and symlinks (however they are written) resolve as if the
// root were "/", so an image with `etc -> /etc` or `x -> ../../../host` cannot point a mount, a
// device node or a mask at the host. Missing directories are created one component at a time with
// mkdirat(2) on the fd of an already resolved parent. The fds returned are O_PATH and close-on-exec;
// a mount is then made on `/proc/self/fd/<fd>` (or with move_mount(2) onto the fd), never on a path
// the kernel would resolve again.
import * as fs from 'fs';
import * as path from 'path';
import { openat2 } from '../native/fs';
import { isErrno } from '../native/errno';
import {
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_WRONLY,
  RESOLVE_BENEATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
} from '../native/constants';
import { mkdirat } from './sys';

const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

/** A path inside the container that cannot be used, with an errno-style code. */
export class RootPathError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'RootPathError';
    this.code = code;
  }
}

/** The components of `p`, lexically cleaned ("a/./b/../c" → ["a", "c"]); never above the root. */
export function components(p: string): string[] {
  return path.posix.normalize('/' + p).split('/').filter(Boolean);
}

/** openat2 of `p` inside the root. */
export function openIn(rootFd: number, p: string, flags: number): number {
  return openat2(rootFd, '/' + components(p).join('/'), { flags, resolve: IN_ROOT });
}

/** As openIn, or undefined when `p` does not exist. */
export function tryOpenIn(rootFd: number, p: string, flags: number): number | undefined {
  try {
    return openIn(rootFd, p, flags);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export function isDirFd(fd: number): boolean {
  return fs.fstatSync(fd).isDirectory();
}

/** An O_PATH fd of directory `p` inside the root, creating missing components (mode 0755). */
export function ensureDir(rootFd: number, p: string, mode = 0o755): number {
  const existing = tryOpenIn(rootFd, p, O_PATH | O_DIRECTORY);
  if (existing !== undefined) return existing;
  const parts = components(p);
  let fd = openIn(rootFd, '/', O_PATH | O_DIRECTORY);
  for (let i = 0; i < parts.length; i++) {
    const prefix = parts.slice(0, i + 1).join('/');
    let next = tryOpenIn(rootFd, prefix, O_PATH | O_DIRECTORY);
    if (next === undefined) {
      try {
        mkdirat(fd, parts[i], mode);
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      next = tryOpenIn(rootFd, prefix, O_PATH | O_DIRECTORY);
      if (next === undefined) {
        fs.closeSync(fd);
        throw new RootPathError(`cannot create directory "/${prefix}" inside the rootfs: a symbolic link that resolves to nothing is in the way`, 'ENOENT');
      }
    }
    fs.closeSync(fd);
    fd = next;
  }
  return fd;
}

/** An O_PATH fd of `p` inside the root; a missing file is created empty (mode 0644) in its (created) parent. */
export function ensureFile(rootFd: number, p: string, mode = 0o644): number {
  const existing = tryOpenIn(rootFd, p, O_PATH);
  if (existing !== undefined) return existing;
  const parts = components(p);
  if (parts.length === 0) throw new RootPathError(`cannot create file ${JSON.stringify(p)}: it is the root`, 'EISDIR');
  const parent = ensureDir(rootFd, parts.slice(0, -1).join('/'));
  try {
    const fd = openat2(parent, parts[parts.length - 1], {
      flags: O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW,
      mode,
      resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
    });
    fs.closeSync(fd);
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
  } finally {
    fs.closeSync(parent);
  }
  return openIn(rootFd, p, O_PATH);
}

/** The parent directory's fd (created) and the last component, for *at() calls on `p`. */
export function parentOf(rootFd: number, p: string): { dirFd: number; name: string } {
  const parts = components(p);
  if (parts.length === 0) throw new RootPathError(`cannot use ${JSON.stringify(p)}: it is the root`, 'EISDIR');
  return { dirFd: ensureDir(rootFd, parts.slice(0, -1).join('/')), name: parts[parts.length - 1] };
}

/** The path the kernel resolves to the file an fd refers to (for mount(2)'s path arguments). */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined || fd < 0) return;
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}
