// Mounts: mount(2), umount2(2), pivot_root(2), mount_setattr(2), mknod(2), and the OCI mount
// option parser (the `options` of a spec mount → flags, propagation and data, as runc reads them).
import { check, fn, q, syscall, sysno } from './libc';
import {
  AT_FDCWD,
  AT_RECURSIVE,
  MNT_DETACH,
  MNT_EXPIRE,
  MNT_FORCE,
  MOUNT_ATTR_NOATIME,
  MOUNT_ATTR_NODEV,
  MOUNT_ATTR_NODIRATIME,
  MOUNT_ATTR_NOEXEC,
  MOUNT_ATTR_NOSUID,
  MOUNT_ATTR_NOSYMFOLLOW,
  MOUNT_ATTR_RDONLY,
  MOUNT_ATTR_RELATIME,
  MOUNT_ATTR_STRICTATIME,
  MOUNT_ATTR__ATIME,
  MS_BIND,
  MS_DIRSYNC,
  MS_I_VERSION,
  MS_LAZYTIME,
  MS_MANDLOCK,
  MS_MOVE,
  MS_NOATIME,
  MS_NODEV,
  MS_NODIRATIME,
  MS_NOEXEC,
  MS_NOSUID,
  MS_NOSYMFOLLOW,
  MS_POSIXACL,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_RELATIME,
  MS_REMOUNT,
  MS_SHARED,
  MS_SILENT,
  MS_SLAVE,
  MS_STRICTATIME,
  MS_SYNCHRONOUS,
  MS_UNBINDABLE,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  S_IFMT,
} from './constants';

const MS_NAMES: ReadonlyArray<readonly [number, string]> = [
  [MS_RDONLY, 'MS_RDONLY'],
  [MS_NOSUID, 'MS_NOSUID'],
  [MS_NODEV, 'MS_NODEV'],
  [MS_NOEXEC, 'MS_NOEXEC'],
  [MS_SYNCHRONOUS, 'MS_SYNCHRONOUS'],
  [MS_REMOUNT, 'MS_REMOUNT'],
  [MS_MANDLOCK, 'MS_MANDLOCK'],
  [MS_DIRSYNC, 'MS_DIRSYNC'],
  [MS_NOSYMFOLLOW, 'MS_NOSYMFOLLOW'],
  [MS_NOATIME, 'MS_NOATIME'],
  [MS_NODIRATIME, 'MS_NODIRATIME'],
  [MS_BIND, 'MS_BIND'],
  [MS_MOVE, 'MS_MOVE'],
  [MS_REC, 'MS_REC'],
  [MS_SILENT, 'MS_SILENT'],
  [MS_POSIXACL, 'MS_POSIXACL'],
  [MS_UNBINDABLE, 'MS_UNBINDABLE'],
  [MS_PRIVATE, 'MS_PRIVATE'],
  [MS_SLAVE, 'MS_SLAVE'],
  [MS_SHARED, 'MS_SHARED'],
  [MS_RELATIME, 'MS_RELATIME'],
  [MS_I_VERSION, 'MS_I_VERSION'],
  [MS_STRICTATIME, 'MS_STRICTATIME'],
  [MS_LAZYTIME, 'MS_LAZYTIME'],
];

/** "MS_BIND|MS_REC" for error messages. */
export function mountFlagNames(flags: number): string {
  const names: string[] = [];
  let rest = flags >>> 0;
  for (const [bit, name] of MS_NAMES) {
    if (rest & bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest) names.push('0x' + rest.toString(16));
  return names.join('|') || '0';
}

/**
 * mount(2). `data` is the filesystem's option string ("size=64m,mode=755").
 * Errors read `mount("proc" on "/x/proc", type proc): EPERM (Operation not permitted)`.
 */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags = 0,
  data: string | null = null,
): void {
  const ret = fn('int mount(const char *, const char *, const char *, unsigned long, const char *)')(
    source,
    target,
    fstype,
    flags >>> 0,
    data,
  );
  check(
    ret,
    'mount',
    () => {
      const parts = [`${q(source)} on ${q(target)}`];
      if (fstype) parts.push(`type ${fstype}`);
      if (flags) parts.push(`flags ${mountFlagNames(flags)}`);
      if (data) parts.push(`data ${q(data)}`);
      return `mount(${parts.join(', ')})`;
    },
    target,
  );
}

/** umount2(2); flags from MNT_DETACH, MNT_FORCE, MNT_EXPIRE, UMOUNT_NOFOLLOW. */
export function umount2(target: string, flags = 0): void {
  check(
    fn('int umount2(const char *, int)')(target, flags),
    'umount2',
    () => {
      const names = [
        [MNT_FORCE, 'MNT_FORCE'],
        [MNT_DETACH, 'MNT_DETACH'],
        [MNT_EXPIRE, 'MNT_EXPIRE'],
        [0x8, 'UMOUNT_NOFOLLOW'],
      ]
        .filter(([bit]) => flags & (bit as number))
        .map(([, name]) => name);
      return `umount2(${q(target)}${names.length ? ', ' + names.join('|') : ''})`;
    },
    target,
  );
}

/** pivot_root(2) via syscall(SYS_pivot_root); `pivotRoot('.', '.')` is the runc idiom. */
export function pivotRoot(newRoot: string, putOld: string): void {
  const ret = syscall(sysno('pivot_root'), 'const char *', newRoot, 'const char *', putOld);
  check(ret, 'pivot_root', () => `pivot_root(${q(newRoot)}, ${q(putOld)})`, newRoot);
}

/** The kernel's dev_t encoding of a device number (glibc's makedev()). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** mknod(2). `mode` includes the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  const dev = makedev(major, minor);
  check(
    fn('int mknod(const char *, uint32_t, uint64_t)')(path, mode >>> 0, dev),
    'mknod',
    () => {
      const type = mode & S_IFMT;
      const kind = type === S_IFCHR ? 'c' : type === S_IFBLK ? 'b' : type === S_IFIFO ? 'p' : '0o' + type.toString(8);
      return `mknod(${q(path)}, ${kind} ${major}:${minor}, 0o${(mode & 0o7777).toString(8)})`;
    },
    path,
  );
}

/** The attributes mount_setattr(2) changes. */
export interface MountAttr {
  attrSet?: number;
  attrClr?: number;
  /** MS_PRIVATE, MS_SHARED, MS_SLAVE or MS_UNBINDABLE, or 0 to leave propagation alone. */
  propagation?: number;
  usernsFd?: number;
}

/**
 * mount_setattr(2) (Linux 5.12+): change mount attributes, recursively with AT_RECURSIVE, which
 * is how the OCI "rro", "rnosuid", … options are applied after a recursive bind mount.
 */
export function mountSetattr(path: string, attr: MountAttr, flags = AT_RECURSIVE, dirfd = AT_FDCWD): void {
  const buf = Buffer.alloc(32);
  buf.writeBigUInt64LE(BigInt(attr.attrSet ?? 0), 0);
  buf.writeBigUInt64LE(BigInt(attr.attrClr ?? 0), 8);
  buf.writeBigUInt64LE(BigInt(attr.propagation ?? 0), 16);
  buf.writeBigUInt64LE(BigInt(attr.usernsFd ?? 0), 24);
  const ret = syscall(sysno('mount_setattr'), 'int', dirfd, 'const char *', path, 'uint', flags, 'void *', buf, 'size_t', buf.length);
  check(
    ret,
    'mount_setattr',
    () => `mount_setattr(${q(path)}, set 0x${(attr.attrSet ?? 0).toString(16)}, clear 0x${(attr.attrClr ?? 0).toString(16)})`,
    path,
  );
}

// ---- OCI mount options ----------------------------------------------------------------------------

/** A spec mount's `options`, sorted into what each system call needs. */
export interface MountOptions {
  /** flags for mount(2) */
  flags: number;
  /** propagation changes to apply after mounting, in order (MS_REC|MS_PRIVATE, …) */
  propagation: number[];
  /** the filesystem data string: every option that is not a flag */
  data: string;
  /** recursive attributes ("rro", "rnosuid", …) for mount_setattr(2) with AT_RECURSIVE */
  recAttrSet: number;
  recAttrClr: number;
  /** OCI extensions that are not kernel options, e.g. "tmpcopyup" */
  extensions: string[];
}

/** option → [clear?, flag] (runc's table) */
const FLAG_OPTIONS: Readonly<Record<string, readonly [boolean, number]>> = {
  acl: [false, MS_POSIXACL],
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  iversion: [false, MS_I_VERSION],
  lazytime: [false, MS_LAZYTIME],
  loud: [true, MS_SILENT],
  mand: [false, MS_MANDLOCK],
  noacl: [true, MS_POSIXACL],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  noiversion: [true, MS_I_VERSION],
  nolazytime: [true, MS_LAZYTIME],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  nosymfollow: [false, MS_NOSYMFOLLOW],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  silent: [false, MS_SILENT],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

const PROPAGATION_OPTIONS: Readonly<Record<string, number>> = {
  private: MS_PRIVATE,
  shared: MS_SHARED,
  slave: MS_SLAVE,
  unbindable: MS_UNBINDABLE,
  rprivate: MS_PRIVATE | MS_REC,
  rshared: MS_SHARED | MS_REC,
  rslave: MS_SLAVE | MS_REC,
  runbindable: MS_UNBINDABLE | MS_REC,
};

/** option → [clear?, attribute] for the recursive variants */
const REC_ATTR_OPTIONS: Readonly<Record<string, readonly [boolean, number]>> = {
  rro: [false, MOUNT_ATTR_RDONLY],
  rrw: [true, MOUNT_ATTR_RDONLY],
  rnosuid: [false, MOUNT_ATTR_NOSUID],
  rsuid: [true, MOUNT_ATTR_NOSUID],
  rnodev: [false, MOUNT_ATTR_NODEV],
  rdev: [true, MOUNT_ATTR_NODEV],
  rnoexec: [false, MOUNT_ATTR_NOEXEC],
  rexec: [true, MOUNT_ATTR_NOEXEC],
  rnodiratime: [false, MOUNT_ATTR_NODIRATIME],
  rdiratime: [true, MOUNT_ATTR_NODIRATIME],
  rrelatime: [false, MOUNT_ATTR_RELATIME],
  rnorelatime: [true, MOUNT_ATTR__ATIME],
  rnoatime: [false, MOUNT_ATTR_NOATIME],
  ratime: [true, MOUNT_ATTR__ATIME],
  rstrictatime: [false, MOUNT_ATTR_STRICTATIME],
  rnostrictatime: [true, MOUNT_ATTR__ATIME],
  rnosymfollow: [false, MOUNT_ATTR_NOSYMFOLLOW],
  rsymfollow: [true, MOUNT_ATTR_NOSYMFOLLOW],
};

const EXTENSION_OPTIONS = new Set(['tmpcopyup']);

/** Sorts OCI mount options the way runc does (later options override earlier ones). */
export function parseMountOptions(options: readonly string[] | undefined): MountOptions {
  const out: MountOptions = { flags: 0, propagation: [], data: '', recAttrSet: 0, recAttrClr: 0, extensions: [] };
  const data: string[] = [];
  for (const option of options ?? []) {
    const flag = FLAG_OPTIONS[option];
    if (flag) {
      const [clear, bit] = flag;
      out.flags = clear ? out.flags & ~bit : out.flags | bit;
      continue;
    }
    const prop = PROPAGATION_OPTIONS[option];
    if (prop !== undefined) {
      out.propagation.push(prop);
      continue;
    }
    const rec = REC_ATTR_OPTIONS[option];
    if (rec) {
      const [clear, attr] = rec;
      if (clear) {
        out.recAttrSet &= ~attr;
        out.recAttrClr |= attr;
      } else {
        out.recAttrClr &= ~attr;
        out.recAttrSet |= attr;
        // atime attributes are one field: setting one means clearing the field first
        if ((attr & MOUNT_ATTR__ATIME) === attr || attr === MOUNT_ATTR_RELATIME) out.recAttrClr |= MOUNT_ATTR__ATIME;
      }
      continue;
    }
    if (EXTENSION_OPTIONS.has(option)) {
      out.extensions.push(option);
      continue;
    }
    data.push(option);
  }
  out.flags >>>= 0;
  out.data = data.join(',');
  return out;
}
