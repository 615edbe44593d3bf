// Mounting what snapshotters return, with containerd's mount.Mount semantics
// (mount/mount_linux.go): options split into flags and data, propagation applied after, a
// read-only bind remounted read-only, and overlay lowerdir lists that would not fit in the
// one page mount(2) accepts compacted.
//
// Long lowerdir lists. Snapshotters return absolute paths, exactly as containerd does; a chain
// of ~100 layers under a typical root makes the option string longer than a page (4096 bytes),
// which mount(2) refuses. Like containerd, when the options reach `pagesize - 512` bytes we take
// the longest common prefix of the lowerdirs, go one level up (the `snapshots/` directory),
// rewrite each lowerdir relative to it ("12/fs:11/fs:…") and run mount(2) with that directory
// as the working directory. A client that mounts our mounts itself must do the same (or use
// mountAll); the working directory is per thread only after unshare(CLONE_FS), so we do it in a
// short-lived worker thread (mount-worker.ts) and never move the daemon's cwd.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { BerthError } from '../services/errdefs';
import { MNT_DETACH, MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SHARED, MS_SILENT, MS_SLAVE, MS_UNBINDABLE } from '../runtime/native/constants';
import { mount, mountSetattr, parseMountOptions, umount2 } from '../runtime/native/mount';
import type { MountAtReply, MountAtRequest } from './mount-worker';
import type { Mount } from './types';

export const PAGE_SIZE = 4096;

const PROPAGATION = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;

/** Sum of the option lengths, as containerd's optionsSize. */
function optionsSize(options: readonly string[]): number {
  let n = 0;
  for (const o of options) n += o.length;
  return n;
}

function longestCommonPrefix(strs: readonly string[]): string {
  if (strs.length === 0) return '';
  let min = strs[0];
  let max = strs[0];
  for (const s of strs) {
    if (s < min) min = s;
    if (s > max) max = s;
  }
  let i = 0;
  while (i < min.length && i < max.length && min[i] === max[i]) i++;
  return min.slice(0, i);
}

/**
 * containerd's compactLowerdirOption: when the lowerdirs share a parent directory, returns it
 * (with a trailing slash) as `chdir` and the options with each lowerdir made relative to it
 * (the lowerdir option moves to the end). `chdir` is '' when nothing can be shortened.
 */
export function compactLowerdirOption(options: readonly string[]): { chdir: string; options: string[] } {
  const idx = options.findIndex((o) => o.startsWith('lowerdir='));
  if (idx < 0) return { chdir: '', options: [...options] };
  const dirs = options[idx].slice('lowerdir='.length).split(':');
  if (dirs.length === 1) return { chdir: '', options: [...options] };
  let common = longestCommonPrefix(dirs);
  if (common === '') return { chdir: '', options: [...options] };
  // snapshot ids are digits: the common prefix may end inside one ("…/snapshots/1"), so go
  // back to the parent directory, as containerd does
  // Go's path.Dir: everything before the last slash ("/r/snapshots/" → "/r/snapshots")
  const slash = common.lastIndexOf('/');
  common = slash <= 0 ? '/' : path.posix.normalize(common.slice(0, slash));
  if (common === '/' || common === '.') return { chdir: '', options: [...options] };
  common += '/';
  const rel = dirs.map((d) => d.slice(common.length));
  const out = options.filter((_, i) => i !== idx);
  out.push(`lowerdir=${rel.join(':')}`);
  return { chdir: common, options: out };
}

function mountInWorker(req: MountAtRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'mount-worker.js'), { workerData: req });
    let replied = false;
    worker.once('message', (reply: MountAtReply) => {
      replied = true;
      if (reply.ok) resolve();
      else reject(Object.assign(new Error(reply.message), { code: reply.code, errno: reply.errno }));
    });
    worker.once('error', (err) => {
      if (!replied) reject(err);
    });
    worker.once('exit', (code) => {
      if (!replied) reject(new Error(`mount helper thread exited (${code}) without replying`));
    });
  });
}

/** Mounts one mount on `target` (containerd's Mount.Mount). */
export async function mountOne(m: Mount, target: string): Promise<void> {
  target = path.resolve(target);
  let options = m.options;
  let chdir = '';
  if (m.type === 'overlay' && optionsSize(options) >= PAGE_SIZE - 512) {
    ({ chdir, options } = compactLowerdirOption(options));
  }
  const parsed = parseMountOptions(options);
  const flags = parsed.flags;
  if (parsed.data.length > PAGE_SIZE - 1) {
    throw new BerthError('InvalidArgument', `mount options is too long (${parsed.data.length} bytes) for ${m.type} on ${target}`);
  }
  const oflags = flags & ~PROPAGATION;
  if ((flags & MS_REMOUNT) === 0 || parsed.data !== '') {
    if (chdir) {
      await mountInWorker({ dir: chdir, source: m.source, target, fstype: m.type, flags: oflags >>> 0, data: parsed.data });
    } else {
      mount(m.source, target, m.type, oflags, parsed.data || null);
    }
  }
  for (const p of parsed.propagation) {
    mount(null, target, null, (p & (PROPAGATION | MS_REC)) | MS_SILENT);
  }
  if ((oflags & (MS_BIND | MS_RDONLY)) === (MS_BIND | MS_RDONLY)) {
    mount(null, target, null, oflags | MS_REMOUNT);
  }
  if (parsed.recAttrSet || parsed.recAttrClr) {
    mountSetattr(target, { attrSet: parsed.recAttrSet, attrClr: parsed.recAttrClr });
  }
}

/** Mounts each mount on `target`, in order (containerd's mount.All). */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  for (const m of mounts) await mountOne(m, target);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * umount2 with containerd's patience: EBUSY is retried for up to 2.5 s; EINVAL (not a
 * mount point) is success.
 */
export async function unmount(target: string, flags = 0): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      umount2(target, flags);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EINVAL') return;
      if (code !== 'EBUSY') throw err;
      await sleep(50);
    }
  }
  throw new BerthError('FailedPrecondition', `failed to unmount target ${target}: EBUSY (Device or resource busy)`);
}

/** Unmounts everything stacked on `target` (no-op for '' or a missing path). */
export async function unmountAll(target: string, flags = 0): Promise<void> {
  if (target === '' || !fs.existsSync(target)) return;
  for (let i = 0; i < 1000; i++) {
    try {
      umount2(target, flags);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EINVAL') return;
      if (code === 'EBUSY') {
        await unmount(target, flags);
        continue;
      }
      throw err;
    }
  }
}

/** Detaches whatever is mounted on `target`, for cleanup paths that must not fail. */
export function detachAll(target: string): void {
  for (let i = 0; i < 1000; i++) {
    try {
      umount2(target, MNT_DETACH);
    } catch {
      return;
    }
  }
}

/**
 * Mounts `mounts` on a fresh directory under `tempRoot` (default: the OS temp dir), runs `fn`
 * with it, then unmounts and removes the directory, also when `fn` fails.
 */
export async function withTempMount<T>(mounts: readonly Mount[], fn: (root: string) => Promise<T>, tempRoot = os.tmpdir()): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(tempRoot, 'berth-mount-'));
  try {
    try {
      await mountAll(mounts, dir);
      return await fn(dir);
    } finally {
      await unmountAll(dir).catch(() => detachAll(dir));
    }
  } finally {
    await fsp.rmdir(dir).catch(() => undefined);
  }
}
