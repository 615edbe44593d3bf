// Filesystem test helpers (continuity's fstest): small appliers that change a tree, and a
// manifest of a tree to compare two trees by type, mode, owner, content, link target, device,
// xattrs and hard-link grouping. Used by the conformance suite and the apply/diff tests; kept
// here (as containerd keeps its testsuite beside the snapshotters) so every snapshotter's tests
// share them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { splitDev } from './copy';
import { AT_FDCWD, lgetxattrs, mknodat } from './sys';

/** A change to a tree rooted at the given directory. */
export type Applier = (root: string) => void;

const at = (root: string, p: string) => path.join(root, p);

export function createFile(p: string, content: string | Buffer, mode = 0o644): Applier {
  return (root) => {
    fs.writeFileSync(at(root, p), content);
    fs.chmodSync(at(root, p), mode);
  };
}

export function createDir(p: string, mode = 0o755): Applier {
  return (root) => {
    fs.mkdirSync(at(root, p));
    fs.chmodSync(at(root, p), mode);
  };
}

export function removeAll(p: string): Applier {
  return (root) => fs.rmSync(at(root, p), { recursive: true, force: true });
}

export function chown(p: string, uid: number, gid: number): Applier {
  return (root) => fs.lchownSync(at(root, p), uid, gid);
}

export function chmod(p: string, mode: number): Applier {
  return (root) => fs.chmodSync(at(root, p), mode);
}

export function link(oldPath: string, newPath: string): Applier {
  return (root) => fs.linkSync(at(root, oldPath), at(root, newPath));
}

export function symlink(target: string, p: string): Applier {
  return (root) => fs.symlinkSync(target, at(root, p));
}

export function rename(oldPath: string, newPath: string): Applier {
  return (root) => fs.renameSync(at(root, oldPath), at(root, newPath));
}

export function mknod(p: string, mode: number, major = 0, minor = 0): Applier {
  return (root) => mknodat(AT_FDCWD, at(root, p), mode, major, minor);
}

export function apply(...appliers: Applier[]): Applier {
  return (root) => {
    for (const a of appliers) a(root);
  };
}

export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  dev?: string;
  xattrs?: Record<string, string>;
  /** Other paths of the same inode (hard links), sorted. */
  links?: string[];
  mtime?: string;
}

export interface ManifestOptions {
  /** Record mtimes (seconds and nanoseconds); directories too unless `dirMtimes` is false. */
  mtimes?: boolean;
  dirMtimes?: boolean;
  /** Leave out xattrs with these prefixes (default: trusted.overlay.). */
  ignoreXattrs?: string[];
}

/** Every entry of the tree under `root` (root excluded), keyed by relative path (a latin1 byte string). */
export function manifest(root: string, opts: ManifestOptions = {}): Record<string, ManifestEntry> {
  const out: Record<string, ManifestEntry> = {};
  const inodes = new Map<string, string[]>();
  const ignore = opts.ignoreXattrs ?? ['trusted.overlay.'];
  // names as byte strings (latin1), paths as Buffers: names that are not UTF-8 work too
  const rootBuf = Buffer.from(root);
  const abs = (rel: string) => (rel ? Buffer.concat([rootBuf, Buffer.from('/'), Buffer.from(rel, 'latin1')]) : rootBuf);
  const walk = (rel: string) => {
    const names = fs.readdirSync(abs(rel), { encoding: 'buffer' }).map((n) => n.toString('latin1')).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const p = abs(r);
      const st = fs.lstatSync(p, { bigint: true });
      const e: ManifestEntry = {
        type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : 'file',
        mode: (Number(st.mode) & 0o7777).toString(8),
        uid: Number(st.uid),
        gid: Number(st.gid),
      };
      if (e.type === 'file') {
        e.size = Number(st.size);
        e.sha256 = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      }
      if (e.type === 'symlink') e.target = fs.readlinkSync(p, { encoding: 'buffer' }).toString('latin1');
      if (e.type === 'char' || e.type === 'block') {
        const { major, minor } = splitDev(st.rdev);
        e.dev = `${major}:${minor}`;
      }
      const xattrs: Record<string, string> = {};
      for (const [k, v] of lgetxattrs(p)) if (!ignore.some((pre) => k.startsWith(pre))) xattrs[k] = v.toString('hex');
      if (Object.keys(xattrs).length) e.xattrs = xattrs;
      if (opts.mtimes && (e.type !== 'dir' || opts.dirMtimes !== false)) e.mtime = String(st.mtimeNs);
      if (e.type !== 'dir' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const list = inodes.get(key) ?? [];
        list.push(r);
        inodes.set(key, list);
      }
      out[r] = e;
      if (e.type === 'dir') walk(r);
    }
  };
  walk('');
  for (const paths of inodes.values()) {
    if (paths.length < 2) continue;
    for (const p of paths) out[p].links = paths.filter((q) => q !== p).sort();
  }
  return out;
}
