// Computing a layer: the changes from a lower tree to an upper tree as an OCI tar with
// whiteouts (containerd's archive.WriteDiff: continuity's double-walk fs.Changes feeding
// ChangeWriter), gzip-compressed by default, streamed.
//
// Two ways to read the upper side:
//  - 'tree' (default): `upper` is a complete tree (e.g. the mounted active snapshot) and is
//    compared with `lower` (e.g. a mounted view of the parent, or undefined for a first layer).
//    Files are the same when mode, owner, device, security.capability, size and mtime agree
//    (content compared when both mtimes are whole seconds), as continuity decides.
//  - 'overlay': `upper` is an overlay upper dir holding only the changes: its 0:0 character
//    devices are deletions, `trusted.overlay.opaque=y` directories are opaque. `lower` is only
//    consulted to leave out directories that did not change. Upper dirs written with
//    redirect_dir or metacopy are refused (we never mount with them).
//
// Entries follow containerd's ChangeWriter: PAX headers, mtime truncated to seconds, no
// atime/ctime or user/group names, directories named with a trailing '/', the parents of every
// change included, hard links within the change set kept as links, security.capability as a
// SCHILY.xattr record, sockets left out, whiteouts as empty regular files `.wh.<name>`.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { PassThrough, Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { BerthError } from '../services/errdefs';
import type { Digest } from '../content-store/digest';
import { splitDev } from './copy';
import { byteString, bytes, lgetxattr, printable } from './sys';
import { encodeHeader, END_OF_ARCHIVE, padding, type WriteHeader } from './tar';
import { OVERLAY_METACOPY_XATTR, OVERLAY_OPAQUE_XATTR, OVERLAY_REDIRECT_XATTR, WHITEOUT_OPAQUE_DIR, WHITEOUT_PREFIX } from './whiteout';

export const MEDIA_TYPE_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const MEDIA_TYPE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface DiffOptions {
  /** Default 'gzip'. */
  compression?: 'gzip' | 'none';
  /** zlib level for gzip (default: zlib's default). */
  gzipLevel?: number;
  /** How to read `upper` (see the top of this file). Default 'tree'. */
  upperKind?: 'tree' | 'overlay';
  signal?: AbortSignal;
}

export interface DiffResult {
  mediaType: string;
  /** Digest of the bytes written (compressed, unless compression is 'none'). */
  digest: Digest;
  /** Digest of the uncompressed tar (the layer's diffID). */
  diffID: Digest;
  /** Bytes written. */
  size: number;
  /** Bytes of the uncompressed tar. */
  uncompressedSize: number;
}

type ChangeKind = 'add' | 'modify' | 'delete' | 'unmodified';

const SLASH = Buffer.from('/');
const READ_CHUNK = 1 << 20;

function join(a: Buffer, name: Buffer): Buffer {
  return Buffer.concat([a, SLASH, name]);
}

function relJoin(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

function sortedNames(dir: Buffer): Buffer[] {
  return fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
}

function lstatOrUndefined(p: Buffer): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT' || (err as { code?: string }).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function capability(p: Buffer): Buffer | undefined {
  return lgetxattr(p, 'security.capability');
}

function sameBytes(a?: Buffer, b?: Buffer): boolean {
  if (!a || !b) return !a && !b;
  return a.equals(b);
}

function sameContent(p1: Buffer, p2: Buffer, size: number): boolean {
  const fd1 = fs.openSync(p1, 'r');
  try {
    const fd2 = fs.openSync(p2, 'r');
    try {
      const b1 = Buffer.allocUnsafe(Math.min(size, 32 * 1024) || 1);
      const b2 = Buffer.allocUnsafe(b1.length);
      for (;;) {
        const n1 = fs.readSync(fd1, b1, 0, b1.length, null);
        const n2 = fs.readSync(fd2, b2, 0, b2.length, null);
        if (n1 !== n2) return false;
        if (n1 === 0) return true;
        if (b1.compare(b2, 0, n2, 0, n1) !== 0) return false;
      }
    } finally {
      fs.closeSync(fd2);
    }
  } finally {
    fs.closeSync(fd1);
  }
}

/** continuity's sameFile for two entries at the same path of two different trees. */
function sameFile(lp: Buffer, ls: fs.BigIntStats, up: Buffer, us: fs.BigIntStats): boolean {
  if (ls.dev === us.dev && ls.ino === us.ino) return true;
  if (ls.mode !== us.mode || ls.uid !== us.uid || ls.gid !== us.gid || ls.rdev !== us.rdev) return false;
  if (!sameBytes(capability(lp), capability(up))) return false;
  if (us.isDirectory()) return true;
  if (ls.size !== us.size) return false;
  const s1 = ls.mtimeNs / 1_000_000_000n;
  const s2 = us.mtimeNs / 1_000_000_000n;
  if (s1 !== s2) return false;
  const n1 = ls.mtimeNs % 1_000_000_000n;
  const n2 = us.mtimeNs % 1_000_000_000n;
  if (n1 === 0n && n2 === 0n) {
    if (us.isSymbolicLink()) return fs.readlinkSync(lp, { encoding: 'buffer' }).equals(fs.readlinkSync(up, { encoding: 'buffer' }));
    if (us.size === 0n) return true;
    return sameContent(lp, up, Number(us.size));
  }
  return n1 === n2;
}

/** Produces the tar of a change set (containerd's ChangeWriter), as a sequence of Buffers. */
class ChangeWriter {
  private readonly addedDirs = new Set<string>();
  private readonly inodeSrc = new Map<string, string>();
  private readonly inodeRefs = new Map<string, string[]>();
  private readonly whiteoutTime = Math.floor(Date.now() / 1000);
  private count = 0;

  constructor(
    private readonly upperRoot: Buffer,
    private readonly signal?: AbortSignal,
  ) {}

  private abs(rel: string): Buffer {
    return rel ? join(this.upperRoot, bytes(rel)) : this.upperRoot;
  }

  *whiteout(rel: string): Generator<Buffer> {
    const i = rel.lastIndexOf('/');
    const name = i < 0 ? WHITEOUT_PREFIX + rel : `${rel.slice(0, i)}/${WHITEOUT_PREFIX}${rel.slice(i + 1)}`;
    yield* this.emitHeader({ name, type: '0', mode: 0, uid: 0, gid: 0, size: 0, mtime: this.whiteoutTime });
  }

  *opaque(dirRel: string): Generator<Buffer> {
    yield* this.emitHeader({ name: relJoin(dirRel, WHITEOUT_OPAQUE_DIR), type: '0', mode: 0, uid: 0, gid: 0, size: 0, mtime: this.whiteoutTime });
  }

  /** One change (not a deletion) of the entry at `rel`, whose lstat is `st`. */
  *change(kind: ChangeKind, rel: string, st: fs.BigIntStats): Generator<Buffer> {
    if (++this.count % 256 === 0) this.signal?.throwIfAborted();
    if (st.isSocket()) return;
    const p = this.abs(rel);
    const isDir = st.isDirectory();
    const h: WriteHeader = {
      name: isDir ? `${rel}/` : rel,
      type: '0',
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      mtime: Number(st.mtimeNs / 1_000_000_000n),
    };
    if (isDir) h.type = '5';
    else if (st.isSymbolicLink()) {
      h.type = '2';
      h.linkname = byteString(fs.readlinkSync(p, { encoding: 'buffer' }));
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      h.type = st.isCharacterDevice() ? '3' : '4';
      const { major, minor } = splitDev(st.rdev);
      h.devmajor = major;
      h.devminor = minor;
    } else if (st.isFIFO()) h.type = '6';
    else h.size = Number(st.size);

    let additional: string[] | undefined;
    if (!isDir && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const src = this.inodeSrc.get(key);
      if (src !== undefined) {
        h.type = '1';
        h.linkname = src;
        h.size = 0;
      } else {
        if (kind === 'unmodified') {
          const refs = this.inodeRefs.get(key) ?? [];
          refs.push(h.name);
          this.inodeRefs.set(key, refs);
          return;
        }
        this.inodeSrc.set(key, h.name);
        additional = this.inodeRefs.get(key);
        this.inodeRefs.delete(key);
      }
    } else if (kind === 'unmodified') {
      return;
    }

    const cap = capability(p);
    if (cap && cap.length > 0) h.xattrs = new Map([['security.capability', cap]]);

    yield* this.emitHeader(h);
    if (h.type === '0' && h.size > 0) yield* this.body(p, h.size, rel);
    if (additional) {
      for (const extra of additional) {
        yield* this.emitHeader({ ...h, name: extra, type: '1', linkname: h.name, size: 0 });
      }
    }
  }

  private *body(p: Buffer, size: number, rel: string): Generator<Buffer> {
    const fd = fs.openSync(p, 'r');
    try {
      let left = size;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) throw new BerthError('FailedPrecondition', `file ${JSON.stringify(printable(rel))} shrank while the diff was being written`);
        left -= n;
        yield n === buf.length ? buf : buf.subarray(0, n);
      }
    } finally {
      fs.closeSync(fd);
    }
    const pad = padding(size);
    if (pad.length) yield pad;
  }

  /** Emits a header, preceded by headers of parent directories not yet written. */
  private *emitHeader(h: WriteHeader): Generator<Buffer> {
    yield* this.includeParents(h);
    yield encodeHeader(h);
  }

  private *includeParents(h: WriteHeader): Generator<Buffer> {
    const name = h.name.replace(/\/+$/, '');
    const i = name.lastIndexOf('/');
    if (i > 0) {
      const parent = name.slice(0, i);
      if (!this.addedDirs.has(parent)) {
        this.addedDirs.add(parent);
        // containerd stats (follows) the parent in the upper tree
        const st = fs.statSync(this.abs(parent), { bigint: true });
        yield* this.change('modify', parent, st);
      }
    }
    if (h.type === '5') this.addedDirs.add(name);
  }
}

/** Every entry under `rel` (a directory in upper) as an addition. */
function* addAll(cw: ChangeWriter, upper: Buffer, rel: string): Generator<Buffer> {
  const dir = rel ? join(upper, bytes(rel)) : upper;
  for (const n of sortedNames(dir)) {
    const childRel = relJoin(rel, byteString(n));
    const st = fs.lstatSync(join(dir, n), { bigint: true });
    yield* cw.change('add', childRel, st);
    if (st.isDirectory()) yield* addAll(cw, upper, childRel);
  }
}

/** The double walk: `upper` compared with `lower`, directory by directory in name order. */
function* compareDirs(cw: ChangeWriter, lower: Buffer, upper: Buffer, rel: string): Generator<Buffer> {
  const ldir = rel ? join(lower, bytes(rel)) : lower;
  const udir = rel ? join(upper, bytes(rel)) : upper;
  const lnames = sortedNames(ldir);
  const unames = sortedNames(udir);
  let i = 0;
  let j = 0;
  while (i < lnames.length || j < unames.length) {
    const c = i >= lnames.length ? 1 : j >= unames.length ? -1 : Buffer.compare(lnames[i], unames[j]);
    if (c < 0) {
      yield* cw.whiteout(relJoin(rel, byteString(lnames[i++])));
      continue;
    }
    if (c > 0) {
      const n = unames[j++];
      const childRel = relJoin(rel, byteString(n));
      const st = fs.lstatSync(join(udir, n), { bigint: true });
      yield* cw.change('add', childRel, st);
      if (st.isDirectory()) yield* addAll(cw, upper, childRel);
      continue;
    }
    const n = unames[j++];
    i++;
    const childRel = relJoin(rel, byteString(n));
    const lp = join(ldir, n);
    const up = join(udir, n);
    const ls = fs.lstatSync(lp, { bigint: true });
    const us = fs.lstatSync(up, { bigint: true });
    if (ls.isDirectory() && us.isDirectory()) {
      if (!sameFile(lp, ls, up, us)) yield* cw.change('modify', childRel, us);
      yield* compareDirs(cw, lower, upper, childRel);
    } else if (us.isDirectory()) {
      yield* cw.change('modify', childRel, us);
      yield* addAll(cw, upper, childRel);
    } else if (ls.isDirectory()) {
      yield* cw.change('modify', childRel, us);
    } else {
      yield* cw.change(sameFile(lp, ls, up, us) ? 'unmodified' : 'modify', childRel, us);
    }
  }
}

/** The single walk of an overlay upper dir. */
function* overlayChanges(cw: ChangeWriter, lower: Buffer | undefined, upper: Buffer, rel: string): Generator<Buffer> {
  const udir = rel ? join(upper, bytes(rel)) : upper;
  for (const n of sortedNames(udir)) {
    const childRel = relJoin(rel, byteString(n));
    const up = join(udir, n);
    const st = fs.lstatSync(up, { bigint: true });
    if (st.isCharacterDevice() && st.rdev === 0n) {
      yield* cw.whiteout(childRel);
      continue;
    }
    if (!st.isDirectory()) {
      if (lgetxattr(up, OVERLAY_METACOPY_XATTR) !== undefined) {
        throw new BerthError('FailedPrecondition', `overlay upper entry ${JSON.stringify(printable(childRel))} is a metacopy: diff it as a tree`);
      }
      yield* cw.change('add', childRel, st);
      continue;
    }
    if (lgetxattr(up, OVERLAY_REDIRECT_XATTR) !== undefined) {
      throw new BerthError('FailedPrecondition', `overlay upper dir ${JSON.stringify(printable(childRel))} is a redirect: diff it as a tree`);
    }
    const opaque = lgetxattr(up, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
    const ls = lower ? lstatOrUndefined(join(lower, bytes(childRel))) : undefined;
    const unchanged =
      ls !== undefined && ls.isDirectory() && ls.mode === st.mode && ls.size === st.size && ls.mtimeNs === st.mtimeNs;
    if (!unchanged || opaque) yield* cw.change('modify', childRel, st);
    if (opaque) yield* cw.opaque(childRel);
    yield* overlayChanges(cw, lower, upper, childRel);
  }
}

/** The uncompressed tar of the changes from `lower` to `upper`, as Buffers. */
export function* diffTar(lower: string | undefined, upper: string, opts: Pick<DiffOptions, 'upperKind' | 'signal'> = {}): Generator<Buffer> {
  const u = Buffer.from(upper);
  const l = lower ? Buffer.from(lower) : undefined;
  const cw = new ChangeWriter(u, opts.signal);
  if ((opts.upperKind ?? 'tree') === 'overlay') yield* overlayChanges(cw, l, u, '');
  else if (l) yield* compareDirs(cw, l, u, '');
  else yield* addAll(cw, u, '');
  yield END_OF_ARCHIVE;
}

/** Gathers small pieces (headers, small files) into chunks of at least `size` bytes. */
function* batched(pieces: Iterable<Buffer>, size = 256 * 1024): Generator<Buffer> {
  let pending: Buffer[] = [];
  let n = 0;
  for (const p of pieces) {
    if (p.length >= size) {
      if (n) yield pending.length === 1 ? pending[0] : Buffer.concat(pending, n);
      pending = [];
      n = 0;
      yield p;
      continue;
    }
    pending.push(p);
    n += p.length;
    if (n >= size) {
      yield Buffer.concat(pending, n);
      pending = [];
      n = 0;
    }
  }
  if (n) yield Buffer.concat(pending, n);
}

function hashing(hash: Hash, counter: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      counter.n += chunk.length;
      cb(null, chunk);
    },
  });
}

/**
 * Writes the layer for the changes from `lower` (undefined: nothing) to `upper` into `out`
 * (which is ended), compressed as asked. Resolves with its digests and sizes.
 */
export async function writeDiff(lower: string | undefined, upper: string, out: Writable, opts: DiffOptions = {}): Promise<DiffResult> {
  const compression = opts.compression ?? 'gzip';
  const rawHash = createHash('sha256');
  const outHash = createHash('sha256');
  const raw = { n: 0 };
  const written = { n: 0 };
  const source = Readable.from(batched(diffTar(lower, upper, opts)), { objectMode: false, highWaterMark: 1 << 20 });
  const popts = opts.signal ? { signal: opts.signal } : {};
  try {
    if (compression === 'gzip') {
      const gzip = zlib.createGzip({ chunkSize: 128 * 1024, ...(opts.gzipLevel !== undefined ? { level: opts.gzipLevel } : {}) });
      await pipeline(source, hashing(rawHash, raw), gzip, hashing(outHash, written), out, popts);
    } else {
      await pipeline(source, hashing(rawHash, raw), out, popts);
    }
  } catch (err) {
    if (err instanceof BerthError) throw err;
    if ((err as { name?: string }).name === 'AbortError') throw new BerthError('Canceled', 'diff canceled', { cause: err });
    const code = (err as { code?: string }).code;
    const kind = code === 'ENOSPC' || code === 'EDQUOT' ? 'ResourceExhausted' : 'Unknown';
    throw new BerthError(kind, `failed to write diff: ${(err as Error).message}`, { cause: err });
  }
  const diffID = `sha256:${rawHash.digest('hex')}`;
  if (compression === 'gzip') {
    return { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: `sha256:${outHash.digest('hex')}`, diffID, size: written.n, uncompressedSize: raw.n };
  }
  return { mediaType: MEDIA_TYPE_LAYER, digest: diffID, diffID, size: raw.n, uncompressedSize: raw.n };
}

/** The layer as a readable stream, and its digests once the stream has been read to the end. */
export function diffStream(lower: string | undefined, upper: string, opts: DiffOptions = {}): { stream: Readable; result: Promise<DiffResult> } {
  const stream = new PassThrough({ highWaterMark: 1 << 20 });
  const result = writeDiff(lower, upper, stream, opts);
  result.catch((err) => stream.destroy(err));
  return { stream, result };
}
