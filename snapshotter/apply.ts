// Applying an OCI layer (a tar stream, gzip/zstd/uncompressed) onto a directory — containerd's
// archive.Apply (applyNaive + createTarFile) with the overlay whiteout conversion.
//
// Where to apply: into a fresh active snapshot. For overlay that is the snapshot's upper dir
// with mode 'overlay' and the parent chain's dirs as `parents` (applyToMounts works this out
// from the snapshot's mounts); for native or a parentless snapshot, its tree with mode 'plain'.
// If apply fails the directory holds part of the layer: remove the snapshot (it was never
// committed) and report the error — there is no rollback inside a directory.
//
// Containment. Every entry is created under the root and only there, whatever the archive says:
//  - names are cleaned lexically first, `..` stopping at the root (`../../etc/x` → `etc/x`,
//    `/etc/x` → `etc/x`), as containerd does;
//  - the entry's parent directory is opened with openat2(RESOLVE_IN_ROOT): symlinks met on the way
//    (`a -> /etc`, `b -> ..`) resolve as if the root were `/`, so `a/x` lands in `<root>/etc/x`;
//  - the entry itself is created by name relative to that directory fd (mkdirat, mknodat,
//    symlinkat, linkat, openat2 O_CREAT|O_EXCL|O_NOFOLLOW), and attributes are set on fds or with
//    AT_SYMLINK_NOFOLLOW — the final component is never followed;
//  - hard link targets resolve the same way inside the root: a link to `/etc/passwd` means
//    `<root>/etc/passwd` (or fails when that does not exist); a link to the root itself fails;
//  - existing entries are replaced (removed through fds, never following symlinks), except that
//    a directory entry merges into an existing directory;
//  - `trusted.*` xattrs from the archive are ignored (they would forge overlay whiteouts).
// Nothing is written through a path string that the archive controls.
//
// Attributes (as root): owner (lchown), xattrs (SCHILY.xattr.*, incl. security.capability),
// then mode (after chown, which clears setuid/setgid), then times; directories' times are set
// after everything else, so later entries do not disturb them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { BerthError } from '../services/errdefs';
import { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_PATH, O_RDONLY, O_WRONLY, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, S_IFBLK, S_IFCHR, S_IFIFO } from '../runtime/native/constants';
import type { Digest } from '../content-store/digest';
import { decompress, type Compression } from './compression';
import { withTempMount } from './mount';
import {
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  bytes,
  byteString,
  fchmodatNoFollow,
  fchownat,
  fdPath,
  fsetxattr,
  futimens,
  fgetxattrs,
  linkat,
  lsetxattr,
  mkdirat,
  mknodat,
  openat2,
  printable,
  readlinkat,
  symlinkat,
  timespecFromNs,
  unlinkat,
  utimensat,
  type Timespec,
} from './sys';
import { TarParser, type TarHeader, type TarSink } from './tar';
import type { Mount } from './types';
import { OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE_DIR, WHITEOUT_PREFIX } from './whiteout';

/** 'overlay': whiteouts become overlay whiteouts in an upper dir; 'plain': they delete. */
export type ApplyMode = 'overlay' | 'plain';

export interface ApplyOptions {
  /** Default 'plain'. */
  mode?: ApplyMode;
  /**
   * Overlay only: the lower dirs, nearest first. A parent directory the layer needs but does not
   * carry is created in the upper with the owner, mode, times and xattrs it has in the nearest
   * lower that has it (containerd's WithParents), so the merged view does not change.
   */
  parents?: readonly string[];
  signal?: AbortSignal;
  /** Told about ignored xattrs and the like. */
  logger?: { warn(obj: object, msg: string): void };
}

export interface ApplyResult {
  /** sha256 of the uncompressed stream (the layer's diffID). */
  diffID: Digest;
  /** Bytes of the uncompressed stream. */
  size: number;
  compression: Compression;
}

const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY;
const MAX_CACHED_DIRS = 64;
const MAX_SYMLINK_HOPS = 40;
/** containerd's boundTime: times outside [1970, 1970 + 2^33 s) become the epoch. */
const MAX_TIME = 2 ** 33 - 1;

function errCode(err: unknown): string | undefined {
  return (err as { code?: string })?.code;
}

function bound(t: Timespec): Timespec {
  return t.sec < 0 || t.sec > MAX_TIME ? { sec: 0, nsec: 0 } : t;
}

/** Lexical clean with `..` stopping at the root: the path relative to the root, '' for the root. */
export function cleanName(name: string): string {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

function splitName(rel: string): [dir: string, base: string] {
  const i = rel.lastIndexOf('/');
  return i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
}

function joinName(dir: string, base: string): string {
  return dir ? `${dir}/${base}` : base;
}

/** The state of one apply: fds into the root, the current entry, directories to finish. */
class Applier implements TarSink {
  readonly parser = new TarParser(this);
  private readonly rootFd: number;
  private readonly lowerFds: number[] = [];
  private readonly dirCache = new Map<string, number>();
  private readonly dirTimes = new Map<string, [Timespec, Timespec]>();
  /** Plain mode: entries this layer created, which an opaque marker keeps. */
  private readonly unpacked: Set<string> | null;
  private fileFd = -1;
  private skipBody = false;
  /** The entry being applied, for error messages. */
  current = '';

  constructor(
    root: string,
    private readonly mode: ApplyMode,
    parents: readonly string[],
    private readonly logger?: ApplyOptions['logger'],
  ) {
    this.rootFd = fs.openSync(root, O_RDONLY | O_DIRECTORY);
    this.unpacked = mode === 'plain' ? new Set() : null;
    try {
      if (mode === 'overlay') for (const p of parents) this.lowerFds.push(fs.openSync(p, O_RDONLY | O_DIRECTORY));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  close(): void {
    if (this.fileFd >= 0) fs.closeSync(this.fileFd);
    this.fileFd = -1;
    this.dropDirCache();
    for (const fd of this.lowerFds) fs.closeSync(fd);
    this.lowerFds.length = 0;
    fs.closeSync(this.rootFd);
  }

  // ---- directories -------------------------------------------------------------------------

  /** Forgets (and closes) cached directory fds, except `keep`. */
  private dropDirCache(keep = -1): void {
    for (const [rel, fd] of this.dirCache) {
      if (fd === keep) continue;
      fs.closeSync(fd);
      this.dirCache.delete(rel);
    }
  }

  private cache(rel: string, fd: number): number {
    this.dirCache.set(rel, fd);
    if (this.dirCache.size > MAX_CACHED_DIRS) {
      const [oldest, ofd] = this.dirCache.entries().next().value as [string, number];
      this.dirCache.delete(oldest);
      fs.closeSync(ofd);
    }
    return fd;
  }

  /** An fd (O_RDONLY|O_DIRECTORY) on the directory `rel` resolves to inside the root; created when missing. */
  private dir(rel: string, create = true): number {
    if (rel === '') return this.rootFd;
    const hit = this.dirCache.get(rel);
    if (hit !== undefined) {
      this.dirCache.delete(rel);
      this.dirCache.set(rel, hit);
      return hit;
    }
    try {
      return this.cache(rel, openat2(this.rootFd, bytes(rel), DIR_FLAGS, 0, IN_ROOT));
    } catch (err) {
      if (errCode(err) === 'ENOENT' && create) return this.cache(rel, this.mkparent(rel));
      throw this.resolveError(err, rel);
    }
  }

  private resolveError(err: unknown, rel: string): unknown {
    const code = errCode(err);
    if (code === 'ENOTDIR') return new BerthError('FailedPrecondition', `${JSON.stringify(printable(rel))} is not a directory`, { cause: err });
    if (code === 'ELOOP') return new BerthError('InvalidArgument', `too many levels of symbolic links resolving ${JSON.stringify(printable(rel))}`, { cause: err });
    if (code === 'ENOENT') return new BerthError('FailedPrecondition', `${JSON.stringify(printable(rel))} does not exist`, { cause: err });
    return err;
  }

  /**
   * Creates the missing directories of `rel` (containerd's mkparent), one component at a time
   * under fds inside the root. A dangling symlink on the way is followed inside the root, its
   * target created — what containerd's RootPath + MkdirAll do.
   */
  private mkparent(rel: string): number {
    let path = rel;
    for (let hop = 0; hop <= MAX_SYMLINK_HOPS; hop++) {
      const parts = path.split('/').filter((p) => p !== '' && p !== '.');
      let fd = this.rootFd;
      let cur = '';
      let restart: string | undefined;
      try {
        for (let i = 0; i < parts.length; i++) {
          const comp = parts[i];
          const next = cur === '' ? comp : `${cur}/${comp}`;
          let nfd: number;
          try {
            nfd = openat2(this.rootFd, bytes(next), DIR_FLAGS, 0, IN_ROOT);
          } catch (err) {
            if (errCode(err) !== 'ENOENT') throw this.resolveError(err, next);
            try {
              mkdirat(fd, bytes(comp), 0o755);
            } catch (err2) {
              if (errCode(err2) !== 'EEXIST') throw err2;
              // a symlink whose target is missing: go on from its target, inside the root
              const target = byteString(readlinkat(fd, bytes(comp)));
              const rest = parts.slice(i + 1).join('/');
              restart = (target.startsWith('/') ? target : `${cur}/${target}`) + (rest ? `/${rest}` : '');
              break;
            }
            nfd = openat2(fd, bytes(comp), DIR_FLAGS | O_NOFOLLOW);
            try {
              this.initParentDir(nfd, next);
            } catch (err3) {
              fs.closeSync(nfd);
              throw err3;
            }
          }
          if (fd !== this.rootFd) fs.closeSync(fd);
          fd = nfd;
          cur = next;
        }
      } catch (err) {
        if (fd !== this.rootFd) fs.closeSync(fd);
        throw err;
      }
      if (restart === undefined) return fd;
      if (fd !== this.rootFd) fs.closeSync(fd);
      path = restart;
    }
    throw new BerthError('InvalidArgument', `too many levels of symbolic links resolving ${JSON.stringify(printable(rel))}`);
  }

  /** Attributes of a directory mkparent created: from the nearest lower that has it, else 0755 root. */
  private initParentDir(fd: number, rel: string): void {
    for (const lower of this.lowerFds) {
      let pfd: number;
      try {
        pfd = openat2(lower, bytes(rel), O_PATH | O_NOFOLLOW, 0, IN_ROOT);
      } catch (err) {
        if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') continue; // not in this lower
        throw err;
      }
      let lfd: number;
      try {
        if (!fs.fstatSync(pfd).isDirectory()) break; // replaced in that lower: defaults
        lfd = openat2(pfd, '.', DIR_FLAGS);
      } finally {
        fs.closeSync(pfd);
      }
      try {
        const st = fs.fstatSync(lfd, { bigint: true });
        fs.fchownSync(fd, Number(st.uid), Number(st.gid));
        fs.fchmodSync(fd, Number(st.mode) & 0o7777);
        for (const [k, v] of fgetxattrs(lfd)) if (!k.startsWith('trusted.')) fsetxattr(fd, k, v);
        futimens(fd, timespecFromNs(st.atimeNs), timespecFromNs(st.mtimeNs));
        return;
      } finally {
        fs.closeSync(lfd);
      }
    }
    fs.fchmodSync(fd, 0o755);
  }

  // ---- removal -----------------------------------------------------------------------------

  /**
   * Removes `name` under `dirFd`, whatever it is (a directory with everything in it). Cached
   * directories may have been inside it or reached through it: all are forgotten but `dirFd`.
   */
  private remove(dirFd: number, name: Buffer): void {
    this.dropDirCache(dirFd);
    removeAt(dirFd, name);
  }

  // ---- entries -----------------------------------------------------------------------------

  entry(h: TarHeader): void {
    this.current = h.name;
    this.skipBody = true;
    const rel = cleanName(h.name);
    if (rel === '') return; // the root itself: ignored, as containerd does
    const [dirRel, base] = splitName(rel);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.whiteout(h, dirRel, base);
      return;
    }

    const dirFd = this.dir(dirRel);
    const name = bytes(base);
    switch (h.type) {
      case '0':
        this.createFile(dirFd, name);
        this.skipBody = false;
        break;
      case '5':
        this.createDir(dirFd, name, rel, h);
        break;
      case '2':
        this.replaceWith(dirFd, name, () => symlinkat(bytes(h.linkname), dirFd, name));
        this.finishAt(dirFd, name, h, true);
        break;
      case '1':
        this.createLink(dirFd, name, h);
        break;
      case '3':
      case '4':
      case '6': {
        const type = h.type === '3' ? S_IFCHR : h.type === '4' ? S_IFBLK : S_IFIFO;
        this.replaceWith(dirFd, name, () => mknodat(dirFd, name, type | (h.mode & 0o7777), h.devmajor, h.devminor));
        this.finishAt(dirFd, name, h, false);
        break;
      }
      default:
        throw new BerthError('InvalidArgument', `unsupported tar entry type ${JSON.stringify(h.type)}`);
    }
    this.unpacked?.add(rel);
  }

  data(chunk: Buffer): void {
    if (this.skipBody) return;
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(this.fileFd, chunk, off, chunk.length - off);
  }

  end(h: TarHeader): void {
    if (this.fileFd >= 0) {
      const fd = this.fileFd;
      this.fileFd = -1;
      try {
        fs.fchownSync(fd, h.uid, h.gid);
        this.setXattrs(h, (k, v) => fsetxattr(fd, k, v), true);
        fs.fchmodSync(fd, h.mode & 0o7777);
        futimens(fd, atimeOf(h), bound(h.mtime));
      } finally {
        fs.closeSync(fd);
      }
    }
  }

  /** Creates with `create`; when the name is taken, removes what is there and creates again. */
  private replaceWith(dirFd: number, name: Buffer, create: () => void): void {
    try {
      create();
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
      this.remove(dirFd, name);
      create();
    }
  }

  private createFile(dirFd: number, name: Buffer): void {
    const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
    try {
      this.fileFd = openat2(dirFd, name, flags, 0o600);
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
      this.remove(dirFd, name);
      this.fileFd = openat2(dirFd, name, flags, 0o600);
    }
  }

  private createDir(parentFd: number, name: Buffer, rel: string, h: TarHeader): void {
    try {
      mkdirat(parentFd, name, 0o700);
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
      const st = fs.lstatSync(fdPath(parentFd, name));
      if (!st.isDirectory()) {
        this.remove(parentFd, name);
        mkdirat(parentFd, name, 0o700);
      }
    }
    const fd = openat2(parentFd, name, DIR_FLAGS | O_NOFOLLOW);
    try {
      fs.fchownSync(fd, h.uid, h.gid);
      this.setXattrs(h, (k, v) => fsetxattr(fd, k, v), true);
      fs.fchmodSync(fd, h.mode & 0o7777);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    const old = this.dirCache.get(rel);
    if (old !== undefined) {
      this.dirCache.delete(rel);
      fs.closeSync(old);
    }
    this.cache(rel, fd);
    this.dirTimes.set(rel, [atimeOf(h), bound(h.mtime)]);
  }

  private createLink(dirFd: number, name: Buffer, h: TarHeader): void {
    const target = cleanName(h.linkname);
    if (target === '') throw new BerthError('InvalidArgument', `invalid hard link target ${JSON.stringify(printable(h.linkname))}: the root directory`);
    const [tdirRel, tbase] = splitName(target);
    let tdirFd: number;
    try {
      tdirFd = this.dir(tdirRel, false);
    } catch (err) {
      throw new BerthError('FailedPrecondition', `hard link target ${JSON.stringify(printable(h.linkname))} does not exist`, { cause: err });
    }
    const link = () => linkat(tdirFd, bytes(tbase), dirFd, name, 0);
    try {
      link();
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT') throw new BerthError('FailedPrecondition', `hard link target ${JSON.stringify(printable(h.linkname))} does not exist`, { cause: err });
      if (code === 'EPERM') throw new BerthError('InvalidArgument', `invalid hard link target ${JSON.stringify(printable(h.linkname))}: a directory`, { cause: err });
      if (code !== 'EEXIST') throw err;
      // the target fd may be the one remove() drops: resolve it again after
      this.remove(dirFd, name);
      tdirFd = this.dir(tdirRel, false);
      linkat(tdirFd, bytes(tbase), dirFd, name, 0);
    }
    // the header's attributes apply to the shared inode, as in containerd — but a chown to the
    // owner it already has is skipped: it would drop security.capability set by the first entry
    const st = fs.lstatSync(fdPath(dirFd, name));
    this.finishAt(dirFd, name, h, st.isSymbolicLink(), st.uid === h.uid && st.gid === h.gid);
  }

  /** Owner, xattrs, mode (not for symlinks) and times of a non-regular, non-directory entry. */
  private finishAt(dirFd: number, name: Buffer, h: TarHeader, isSymlink: boolean, skipChown = false): void {
    if (!skipChown) fchownat(dirFd, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
    if (h.xattrs) {
      const p = fdPath(dirFd, name);
      this.setXattrs(h, (k, v) => lsetxattr(p, k, v), false);
    }
    if (!isSymlink) fchmodatNoFollow(dirFd, name, h.mode & 0o7777);
    utimensat(dirFd, name, atimeOf(h), bound(h.mtime), AT_SYMLINK_NOFOLLOW);
  }

  private setXattrs(h: TarHeader, set: (k: string, v: Buffer) => void, regularOrDir: boolean): void {
    if (!h.xattrs) return;
    for (const [k, v] of h.xattrs) {
      if (k.startsWith('trusted.')) {
        this.logger?.warn({ entry: printable(h.name), xattr: k }, 'ignored trusted xattr in archive');
        continue;
      }
      try {
        set(k, v);
      } catch (err) {
        const code = errCode(err);
        if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || (code === 'EPERM' && k.startsWith('user.') && !regularOrDir)) {
          this.logger?.warn({ entry: printable(h.name), xattr: k, err: (err as Error).message }, 'ignored xattr in archive');
          continue;
        }
        throw err;
      }
    }
  }

  private whiteout(h: TarHeader, dirRel: string, base: string): void {
    if (base === WHITEOUT_OPAQUE_DIR) {
      const dirFd = this.dir(dirRel);
      if (this.mode === 'overlay') {
        fsetxattr(dirFd, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      } else {
        this.clearExcept(dirFd, dirRel);
        this.dropDirCache(dirFd);
      }
      return;
    }
    const orig = base.slice(WHITEOUT_PREFIX.length);
    if (orig === '' || orig === '.' || orig === '..') {
      throw new BerthError('InvalidArgument', `invalid whiteout name ${JSON.stringify(printable(base))}`);
    }
    const dirFd = this.dir(dirRel);
    const name = bytes(orig);
    if (this.mode === 'overlay') {
      this.replaceWith(dirFd, name, () => mknodat(dirFd, name, S_IFCHR, 0, 0));
      fchownat(dirFd, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
    } else {
      try {
        this.remove(dirFd, name);
      } catch (err) {
        if (errCode(err) !== 'ENOENT') throw err;
      }
    }
  }

  /** Plain-mode opaque directory: removes everything under it this layer did not create. */
  private clearExcept(dirFd: number, dirRel: string): void {
    for (const n of fs.readdirSync(fdPath(dirFd), { encoding: 'buffer' })) {
      const rel = joinName(dirRel, byteString(n));
      if (!this.unpacked!.has(rel)) {
        removeAt(dirFd, n);
        continue;
      }
      let sub: number;
      try {
        sub = openat2(dirFd, n, DIR_FLAGS | O_NOFOLLOW);
      } catch (err) {
        if (errCode(err) === 'ENOTDIR' || errCode(err) === 'ELOOP') continue;
        throw err;
      }
      try {
        this.clearExcept(sub, rel);
      } finally {
        fs.closeSync(sub);
      }
    }
  }

  /** Directory times, last: nothing created later changes them. */
  finish(): void {
    this.dropDirCache();
    for (const [rel, [atime, mtime]] of this.dirTimes) {
      let fd: number;
      try {
        fd = openat2(this.rootFd, bytes(rel), DIR_FLAGS | O_NOFOLLOW, 0, IN_ROOT);
      } catch (err) {
        const code = errCode(err);
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') continue; // replaced later in the layer
        throw err;
      }
      try {
        futimens(fd, atime, mtime);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
}

/** containerd sets atime to the later of the header's atime and mtime. */
function atimeOf(h: TarHeader): Timespec {
  const m = bound(h.mtime);
  if (!h.atime) return m;
  const a = bound(h.atime);
  return a.sec > m.sec || (a.sec === m.sec && a.nsec > m.nsec) ? a : m;
}

/** Removes `name` under `dirFd` (recursively for a directory), never following symlinks. */
export function removeAt(dirFd: number, name: Buffer): void {
  try {
    unlinkat(dirFd, name, 0);
    return;
  } catch (err) {
    if (errCode(err) !== 'EISDIR' && errCode(err) !== 'EPERM') throw err;
  }
  let fd: number;
  try {
    fd = openat2(dirFd, name, DIR_FLAGS | O_NOFOLLOW);
  } catch (err) {
    if (errCode(err) === 'ENOTDIR' || errCode(err) === 'ELOOP') {
      unlinkat(dirFd, name, 0); // not a directory after all: report the real error
      return;
    }
    throw err;
  }
  try {
    for (const n of fs.readdirSync(fdPath(fd), { encoding: 'buffer' })) removeAt(fd, n);
  } finally {
    fs.closeSync(fd);
  }
  unlinkat(dirFd, name, AT_REMOVEDIR);
}

/** Turns a failure into a BerthError naming the entry. */
function applyError(err: unknown, entry: string): BerthError {
  const where = entry ? ` at ${JSON.stringify(printable(entry))}` : '';
  if (err instanceof BerthError) {
    return new BerthError(err.kind, `failed to apply layer${where}: ${err.message}`, { cause: err });
  }
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === 'AbortError') return new BerthError('Canceled', `apply canceled${where}`, { cause: err });
  const code = e?.code;
  const kind = code === 'ENOSPC' || code === 'EDQUOT' ? 'ResourceExhausted' : 'FailedPrecondition';
  return new BerthError(kind, `failed to apply layer${where}: ${e?.message ?? String(err)}`, { cause: err });
}

/**
 * Applies the layer `layer` (compression detected from its first bytes) onto the directory
 * `root`. Returns the diffID and uncompressed size. Fails with InvalidArgument for a malformed
 * or hostile archive or corrupt compression, FailedPrecondition when the tree does not allow an
 * entry (see the notes at the top of this file); `root` then holds part of the layer.
 */
export async function applyLayer(root: string, layer: Readable | AsyncIterable<Uint8Array>, opts: ApplyOptions = {}): Promise<ApplyResult> {
  let applier: Applier;
  try {
    applier = new Applier(root, opts.mode ?? 'plain', opts.parents ?? [], opts.logger);
  } catch (err) {
    throw new BerthError(errCode(err) === 'ENOENT' ? 'NotFound' : 'FailedPrecondition', `cannot apply layer into ${root}: ${(err as Error).message}`, { cause: err });
  }
  const hash = createHash('sha256');
  let size = 0;
  let compression: Compression = 'none';
  try {
    for await (const chunk of decompress(layer as AsyncIterable<Uint8Array>, { signal: opts.signal }, (c) => (compression = c))) {
      opts.signal?.throwIfAborted();
      hash.update(chunk);
      size += chunk.length;
      if (!applier.parser.done) applier.parser.write(chunk);
    }
    applier.parser.finish();
    applier.finish();
  } catch (err) {
    throw applyError(err, applier.current);
  } finally {
    applier.close();
  }
  return { diffID: `sha256:${hash.digest('hex')}`, size, compression };
}

/** What applying into a set of snapshot mounts means: the directory and the mode. */
export interface ApplyTarget {
  dir: string;
  mode: ApplyMode;
  parents: string[];
}

/**
 * Where to apply for mounts a snapshotter returned (containerd's diff/apply on Linux): a single
 * overlay mount with an upperdir → its upper dir, overlay whiteouts, its lowerdirs as parents;
 * a single read-write bind mount → its source, plain. Anything else: undefined (mount it).
 */
export function applyTarget(mounts: readonly Mount[]): ApplyTarget | undefined {
  if (mounts.length !== 1) return undefined;
  const m = mounts[0];
  if (m.type === 'overlay') {
    let upper = '';
    let lower: string[] = [];
    for (const o of m.options) {
      if (o.startsWith('upperdir=')) upper = o.slice('upperdir='.length);
      else if (o.startsWith('lowerdir=')) lower = o.slice('lowerdir='.length).split(':');
    }
    return upper ? { dir: upper, mode: 'overlay', parents: lower } : undefined;
  }
  if (m.type === 'bind' && !m.options.includes('ro')) return { dir: m.source, mode: 'plain', parents: [] };
  return undefined;
}

/**
 * Applies a layer into an active snapshot given by its mounts: straight into the upper dir or
 * bind source when applyTarget() says how, otherwise through a temporary mount.
 */
export async function applyToMounts(
  mounts: readonly Mount[],
  layer: Readable | AsyncIterable<Uint8Array>,
  opts: Omit<ApplyOptions, 'mode' | 'parents'> & { tempRoot?: string } = {},
): Promise<ApplyResult> {
  const target = applyTarget(mounts);
  if (target) return applyLayer(target.dir, layer, { ...opts, mode: target.mode, parents: target.parents });
  return withTempMount(mounts, (dir) => applyLayer(dir, layer, { ...opts, mode: 'plain' }), opts.tempRoot);
}
