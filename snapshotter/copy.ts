// A faithful tree copy (continuity's fs.CopyDir, used by the native snapshotter): regular files
// (copy_file_range through libuv, reflinks where the filesystem has them), directories,
// symlinks, device nodes, fifos and sockets, hard links kept as hard links, and for every entry
// owner, mode (setuid/setgid/sticky included), extended attributes and times — directories'
// times set after their children. Names travel as bytes, so names that are not UTF-8 survive.
import * as fs from 'node:fs';
import { Yielder } from './du';
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, lgetxattr, llistxattr, lsetxattr, mknodat, timespecFromNs, utimensat } from './sys';

const SLASH = Buffer.from('/');
const S_IFMT = 0o170000;

/** Splits a dev_t (glibc's major()/minor()). */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}

function copyXattrs(src: Buffer, dst: Buffer, isSymlink: boolean): void {
  for (const name of llistxattr(src)) {
    const value = lgetxattr(src, name);
    if (value === undefined) continue;
    try {
      lsetxattr(dst, name, value);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // user.* is refused on symlinks and devices; filesystems without the namespace say ENOTSUP
      if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || (code === 'EPERM' && (isSymlink || name.startsWith('user.')))) continue;
      throw err;
    }
  }
}

function copyInfo(src: Buffer, dst: Buffer, st: fs.BigIntStats): void {
  const isSymlink = st.isSymbolicLink();
  fs.lchownSync(dst, Number(st.uid), Number(st.gid));
  copyXattrs(src, dst, isSymlink);
  // after chown, which clears setuid/setgid
  if (!isSymlink) fs.chmodSync(dst, Number(st.mode) & 0o7777);
  utimensat(AT_FDCWD, dst, timespecFromNs(st.atimeNs), timespecFromNs(st.mtimeNs), AT_SYMLINK_NOFOLLOW);
}

/**
 * Copies the contents of directory `src` into the existing, empty directory `dst`, and `src`'s
 * own owner, mode, attributes and times onto `dst`.
 */
export async function copyTree(src: string, dst: string, signal?: AbortSignal): Promise<void> {
  const links = new Map<string, Buffer>();
  const y = new Yielder(256);

  const copyDir = async (s: Buffer, d: Buffer): Promise<void> => {
    for (const name of fs.readdirSync(s, { encoding: 'buffer' })) {
      await y.tick(signal);
      const sp = join(s, name);
      const dp = join(d, name);
      const st = fs.lstatSync(sp, { bigint: true });
      const type = Number(st.mode) & S_IFMT;
      if (st.isDirectory()) {
        fs.mkdirSync(dp, 0o700);
        await copyDir(sp, dp);
        copyInfo(sp, dp, st);
        continue;
      }
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first) {
          fs.linkSync(first, dp);
          continue;
        }
        links.set(key, dp);
      }
      if (st.isFile()) {
        fs.copyFileSync(sp, dp, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
      } else if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(sp, { encoding: 'buffer' }), dp);
      } else {
        const { major, minor } = splitDev(st.rdev);
        mknodat(AT_FDCWD, dp, type | (Number(st.mode) & 0o7777), major, minor);
      }
      copyInfo(sp, dp, st);
    }
  };

  const s = Buffer.from(src);
  const d = Buffer.from(dst);
  await copyDir(s, d);
  copyInfo(s, d, fs.lstatSync(s, { bigint: true }));
}
