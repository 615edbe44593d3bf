// Mounting inside the container's root: the spec's mounts (runc's semantics for flags, remounts,
// propagation and recursive attributes), the cgroup filesystem, device nodes and /dev links,
// masked and read-only paths, and detached mounts (fsopen/open_tree) that another thread moves
// into place later.
//
// Targets are always fds from fsroot.ts (resolved inside the root); mount(2) gets them as
// /proc/self/fd/<n>, move_mount(2) and mount_setattr(2) take the fd itself.
import * as fs from 'fs';
import * as path from 'path';
import { mount, mountSetattr } from '../native/mount';
import { isErrno } from '../native/errno';
import {
  AT_EMPTY_PATH,
  AT_RECURSIVE,
  AT_SYMLINK_NOFOLLOW,
  MOUNT_ATTR_NOATIME,
  MOUNT_ATTR_NODEV,
  MOUNT_ATTR_NODIRATIME,
  MOUNT_ATTR_NOEXEC,
  MOUNT_ATTR_NOSUID,
  MOUNT_ATTR_NOSYMFOLLOW,
  MOUNT_ATTR_RDONLY,
  MOUNT_ATTR_STRICTATIME,
  MS_BIND,
  MS_NOATIME,
  MS_NODEV,
  MS_NODIRATIME,
  MS_NOEXEC,
  MS_NOSUID,
  MS_NOSYMFOLLOW,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  MS_STRICTATIME,
  O_DIRECTORY,
  O_PATH,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
} from '../native/constants';
import { closeQuietly, ensureDir, ensureFile, fdPath, isDirFd, openIn, parentOf, tryOpenIn } from './fsroot';
import type { CgroupMountInfo, PlannedDevice, PlannedMount } from './plan';
import { fchownat, fsconfig, fsmount, fsopen, mknodat, moveMount, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, openTree, symlinkat, unlinkat } from './sys';

/** MS_* per-mount flags → MOUNT_ATTR_* (for fsmount/mount_setattr). */
export function mountAttrs(flags: number): number {
  let a = 0;
  if (flags & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  if (flags & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
  else if (flags & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
  if (flags & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
  if (flags & MS_NOSYMFOLLOW) a |= MOUNT_ATTR_NOSYMFOLLOW;
  return a;
}

/** Applies propagation changes and recursive attributes to the mount whose root `fd` is. */
function finishMount(fd: number, m: Pick<PlannedMount, 'propagation' | 'recAttrSet' | 'recAttrClr'>): void {
  for (const p of m.propagation) mount(null, fdPath(fd), null, p);
  if (m.recAttrSet || m.recAttrClr) mountSetattr('', { attrSet: m.recAttrSet, attrClr: m.recAttrClr }, AT_EMPTY_PATH | AT_RECURSIVE, fd);
}

/** Flags a bind mount only takes through a remount. */
const BIND_CREATE_FLAGS = MS_BIND | MS_REC | MS_REMOUNT;

/**
 * One spec mount, now, inside the root `rootFd` (the worker thread, before pivot_root: /proc is
 * the host's, so /proc/self/fd works).
 */
export function applyMount(rootFd: number, m: PlannedMount, cgroup?: CgroupMountInfo): void {
  if (m.type === 'cgroup' && cgroup?.version !== 2) return mountCgroupV1(rootFd, m, cgroup);
  if (m.type === 'cgroup' && cgroup?.version === 2) m = { ...m, type: 'cgroup2', source: 'cgroup2' };
  if (m.bind) {
    const st = fs.statSync(m.source);
    const target = st.isDirectory() ? ensureDir(rootFd, m.destination) : ensureFile(rootFd, m.destination);
    try {
      mount(m.source, fdPath(target), null, MS_BIND | (m.recursive ? MS_REC : 0));
    } finally {
      closeQuietly(target);
    }
    const fd = openIn(rootFd, m.destination, O_PATH);
    try {
      if (m.flags & ~BIND_CREATE_FLAGS) mount(null, fdPath(fd), null, (m.flags & ~MS_REC) | MS_BIND | MS_REMOUNT);
      finishMount(fd, m);
    } finally {
      closeQuietly(fd);
    }
    return;
  }
  const target = ensureDir(rootFd, m.destination);
  try {
    mount(m.source, fdPath(target), m.type, m.flags & ~MS_REMOUNT, m.data || null);
  } finally {
    closeQuietly(target);
  }
  if (m.propagation.length || m.recAttrSet || m.recAttrClr) {
    const fd = openIn(rootFd, m.destination, O_PATH | O_DIRECTORY);
    try {
      finishMount(fd, m);
    } finally {
      closeQuietly(fd);
    }
  }
}

/**
 * A v1 `cgroup` mount as runc makes it: a tmpfs at the destination with one directory per
 * hierarchy (links for co-mounted controllers). With a cgroup namespace each hierarchy is mounted
 * afresh (its root is the namespace's root, the container's cgroup); without one, the container's
 * own cgroup directory is bound. "ro" makes everything read-only.
 */
function mountCgroupV1(rootFd: number, m: PlannedMount, info: CgroupMountInfo | undefined): void {
  if (!info) throw new Error(`mount ${m.destination}: no cgroup hierarchies are known`);
  const ro = (m.flags & MS_RDONLY) !== 0;
  const flags = m.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
  const tmpfs = ensureDir(rootFd, m.destination);
  try {
    mount('tmpfs', fdPath(tmpfs), 'tmpfs', flags, 'mode=755');
  } finally {
    closeQuietly(tmpfs);
  }
  const viaNamespace = info.viaNamespace;
  for (const h of info.hierarchies) {
    const named = h.controllers.find((c) => c.startsWith('name='));
    const dirName = named ? named.slice(5) : h.controllers.join(',');
    const dir = ensureDir(rootFd, path.posix.join(m.destination, dirName));
    try {
      if (viaNamespace) mount('cgroup', fdPath(dir), 'cgroup', flags | (ro ? MS_RDONLY : 0), named ? `none,${named}` : h.controllers.join(','));
      else {
        mount(path.join(h.mountpoint, info.path), fdPath(dir), null, MS_BIND | MS_REC);
        const bound = openIn(rootFd, path.posix.join(m.destination, dirName), O_PATH | O_DIRECTORY);
        try {
          mount(null, fdPath(bound), null, MS_BIND | MS_REMOUNT | flags | (ro ? MS_RDONLY : 0));
        } finally {
          closeQuietly(bound);
        }
      }
    } finally {
      closeQuietly(dir);
    }
    if (!named && h.controllers.length > 1) {
      const parent = openIn(rootFd, m.destination, O_PATH | O_DIRECTORY);
      try {
        for (const c of h.controllers) {
          try {
            symlinkat(dirName, parent, c);
          } catch (err) {
            if (!isErrno(err, 'EEXIST')) throw err;
          }
        }
      } finally {
        closeQuietly(parent);
      }
    }
  }
  if (ro) {
    const fd = openIn(rootFd, m.destination, O_PATH | O_DIRECTORY);
    try {
      mountSetattr('', { attrSet: MOUNT_ATTR_RDONLY }, AT_EMPTY_PATH, fd);
    } finally {
      closeQuietly(fd);
    }
  }
}

// ---- /dev -------------------------------------------------------------------------------------------

/** Creates a device node (existing ones are kept, as runc does) and sets its owner. */
export function makeDevice(rootFd: number, d: PlannedDevice): void {
  const { dirFd, name } = parentOf(rootFd, d.path);
  try {
    const type = d.kind === 'b' ? S_IFBLK : d.kind === 'p' ? S_IFIFO : S_IFCHR;
    try {
      mknodat(dirFd, name, type | (d.mode & 0o7777), d.major, d.minor);
    } catch (err) {
      if (isErrno(err, 'EEXIST')) return;
      throw err;
    }
    if (d.uid !== 0 || d.gid !== 0) fchownat(dirFd, name, d.uid, d.gid, AT_SYMLINK_NOFOLLOW);
  } finally {
    closeQuietly(dirFd);
  }
}

/** A symbolic link in the root; an existing file of that name is left alone. */
export function makeLink(rootFd: number, target: string, linkPath: string, replace = false): void {
  const { dirFd, name } = parentOf(rootFd, linkPath);
  try {
    if (replace) {
      try {
        unlinkat(dirFd, name);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    try {
      symlinkat(target, dirFd, name);
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
  } finally {
    closeQuietly(dirFd);
  }
}

/** runc's /dev links: fd, stdin/out/err, core (when the host has /proc/kcore) and ptmx → pts/ptmx. */
export function setupDevLinks(rootFd: number): void {
  makeLink(rootFd, '/proc/self/fd', '/dev/fd');
  makeLink(rootFd, '/proc/self/fd/0', '/dev/stdin');
  makeLink(rootFd, '/proc/self/fd/1', '/dev/stdout');
  makeLink(rootFd, '/proc/self/fd/2', '/dev/stderr');
  if (fs.existsSync('/proc/kcore')) makeLink(rootFd, '/proc/kcore', '/dev/core');
  makeLink(rootFd, 'pts/ptmx', '/dev/ptmx', true);
}

// ---- masked and read-only paths (new mount API: usable from any thread in the target namespace) ---

/**
 * Hides `p`: a directory under an empty read-only tmpfs, anything else under /dev/null (the
 * container's, else `fallbackNull`). A missing path is skipped, as runc does.
 */
export function maskPath(rootFd: number, p: string, fallbackNull?: number): void {
  const fd = tryOpenIn(rootFd, p, O_PATH);
  if (fd === undefined) return;
  try {
    if (isDirFd(fd)) {
      // as runc: mount("tmpfs", p, "tmpfs", MS_RDONLY, "")
      const fsfd = fsopen('tmpfs');
      try {
        fsconfig(fsfd, 'tmpfs', 'source', 'tmpfs');
        fsconfig(fsfd, 'tmpfs', 'ro');
        const mfd = fsmount(fsfd, 'tmpfs', MOUNT_ATTR_RDONLY);
        try {
          moveMount(mfd, fd, `masking tmpfs onto ${p}`);
        } finally {
          closeQuietly(mfd);
        }
      } finally {
        closeQuietly(fsfd);
      }
      return;
    }
    const own = tryOpenIn(rootFd, '/dev/null', O_PATH);
    const nullFd = own ?? fallbackNull;
    if (nullFd === undefined) throw new Error(`cannot mask ${p}: the container has no /dev/null`);
    try {
      const clone = openTree(nullFd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
      try {
        moveMount(clone, fd, `/dev/null onto ${p}`);
      } finally {
        closeQuietly(clone);
      }
    } finally {
      closeQuietly(own);
    }
  } finally {
    closeQuietly(fd);
  }
}

/** Makes `p` (and everything mounted below it) read-only with a bind of itself. Missing: skipped. */
export function readonlyPath(rootFd: number, p: string): void {
  const fd = tryOpenIn(rootFd, p, O_PATH);
  if (fd === undefined) return;
  try {
    const clone = openTree(fd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    try {
      mountSetattr('', { attrSet: MOUNT_ATTR_RDONLY }, AT_EMPTY_PATH | AT_RECURSIVE, clone);
      moveMount(clone, fd, `read-only bind onto ${p}`);
    } finally {
      closeQuietly(clone);
    }
  } finally {
    closeQuietly(fd);
  }
}

/** Makes the mount at the root of `rootFd` read-only (not its submounts), as runc's readonly root. */
export function readonlyRoot(rootFd: number): void {
  mountSetattr('', { attrSet: MOUNT_ATTR_RDONLY }, AT_EMPTY_PATH, rootFd);
}

// ---- detached mounts for the helper phase --------------------------------------------------------

/**
 * A new filesystem as a detached mount (fsopen/fsconfig/fsmount). `pidnsFd` gives procfs the PID
 * namespace to show (Linux 6.15's "pidns" option).
 */
export function detachedFilesystem(m: PlannedMount, pidnsFd?: number): number {
  const fsfd = fsopen(m.type);
  try {
    fsconfig(fsfd, m.type, 'source', m.source || m.type);
    for (const opt of m.data ? m.data.split(',') : []) {
      const eq = opt.indexOf('=');
      if (eq < 0) fsconfig(fsfd, m.type, opt);
      else fsconfig(fsfd, m.type, opt.slice(0, eq), opt.slice(eq + 1));
    }
    if (pidnsFd !== undefined && m.type === 'proc') fsconfig(fsfd, m.type, 'pidns', { fd: pidnsFd });
    return fsmount(fsfd, m.type, mountAttrs(m.flags));
  } finally {
    closeQuietly(fsfd);
  }
}

/** A detached copy of a bind mount's source with the mount's flags applied (open_tree). */
export function detachedBind(m: PlannedMount): number {
  const tree = openTree(-100 /* AT_FDCWD */, m.source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m.recursive ? AT_RECURSIVE : 0));
  try {
    const attrs = mountAttrs(m.flags);
    if (attrs) mountSetattr('', { attrSet: attrs }, AT_EMPTY_PATH, tree);
    if (m.recAttrSet || m.recAttrClr) mountSetattr('', { attrSet: m.recAttrSet, attrClr: m.recAttrClr }, AT_EMPTY_PATH | AT_RECURSIVE, tree);
    return tree;
  } catch (err) {
    closeQuietly(tree);
    throw err;
  }
}

/** Moves a detached mount onto `destination` inside the root and applies its propagation. */
export function attachDetached(rootFd: number, detachedFd: number, m: Pick<PlannedMount, 'destination' | 'propagation' | 'bind'>, isDir: boolean): void {
  const target = isDir ? ensureDir(rootFd, m.destination) : ensureFile(rootFd, m.destination);
  try {
    moveMount(detachedFd, target, `${m.destination}`);
  } finally {
    closeQuietly(target);
  }
  if (m.propagation.length) {
    const fd = openIn(rootFd, m.destination, O_PATH);
    try {
      for (const p of m.propagation) mountSetattr('', { propagation: p & ~MS_REC }, AT_EMPTY_PATH | (p & MS_REC ? AT_RECURSIVE : 0), fd);
    } finally {
      closeQuietly(fd);
    }
  }
}

