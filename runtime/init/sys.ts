// System calls the init stage needs beyond runtime/native: *at() file operations, mkfifo, the new
// mount API (open_tree, move_mount, fsopen/fsconfig/fsmount), pty ioctls by number, fcntl
// F_DUPFD_CLOEXEC, waitid(2), and glibc's posix_spawn(3) with its file actions.
//
// Same conventions as runtime/native: declared on first use through its libc handle, errors are
// SyscallErrors naming the call. Nothing native loads when this module is imported.
import { check, fn, q, syscall } from '../native/libc';
import { SyscallError } from '../native/errno';
import { AT_EMPTY_PATH, O_CLOEXEC, TIOCGPTN, TIOCGPTPEER } from '../native/constants';
import { makedev } from '../native/mount';

// The new mount API's numbers are the same on every architecture (the unified table from 5.1/5.2).
const SYS_open_tree = 428;
const SYS_move_mount = 429;
const SYS_fsopen = 430;
const SYS_fsconfig = 431;
const SYS_fsmount = 432;

export const OPEN_TREE_CLONE = 1;
export const OPEN_TREE_CLOEXEC = O_CLOEXEC;
export const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
export const MOVE_MOUNT_T_EMPTY_PATH = 0x40;
export const FSOPEN_CLOEXEC = 1;
export const FSMOUNT_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_SET_FD = 5;
const FSCONFIG_CMD_CREATE = 6;

export const AT_REMOVEDIR = 0x200;
export const F_DUPFD_CLOEXEC = 1030;

// ---- files ----------------------------------------------------------------------------------------

export function mkdirat(dirfd: number, name: string, mode: number): void {
  check(fn('int mkdirat(int, const char *, uint32_t)')(dirfd, name, mode), 'mkdirat', () => `mkdirat(fd ${dirfd}, ${q(name)})`, name);
}

/** mknodat(2); `mode` includes the file type. */
export function mknodat(dirfd: number, name: string, mode: number, major = 0, minor = 0): void {
  check(
    fn('int mknodat(int, const char *, uint32_t, uint64_t)')(dirfd, name, mode >>> 0, makedev(major, minor)),
    'mknodat',
    () => `mknodat(fd ${dirfd}, ${q(name)}, ${major}:${minor}, 0o${(mode & 0o7777).toString(8)})`,
    name,
  );
}

export function symlinkat(target: string, dirfd: number, name: string): void {
  check(fn('int symlinkat(const char *, int, const char *)')(target, dirfd, name), 'symlinkat', () => `symlinkat(${q(target)}, fd ${dirfd}, ${q(name)})`, name);
}

export function unlinkat(dirfd: number, name: string, flags = 0): void {
  check(fn('int unlinkat(int, const char *, int)')(dirfd, name, flags), 'unlinkat', () => `unlinkat(fd ${dirfd}, ${q(name)})`, name);
}

/** fchownat(2); with AT_EMPTY_PATH and name "" it changes the file `dirfd` refers to. */
export function fchownat(dirfd: number, name: string, uid: number, gid: number, flags: number): void {
  check(fn('int fchownat(int, const char *, uint32_t, uint32_t, int)')(dirfd, name, uid, gid, flags), 'fchownat', () => `fchownat(fd ${dirfd}, ${q(name)}, ${uid}, ${gid})`, name);
}

export function mkfifo(path: string, mode: number): void {
  check(fn('int mkfifo(const char *, uint32_t)')(path, mode), 'mkfifo', () => `mkfifo(${q(path)})`, path);
}

/** A close-on-exec duplicate of `fd` numbered `min` or above. */
export function dupCloexec(fd: number, min = 3): number {
  return check(fn('int fcntl(int, int, ...)')(fd, F_DUPFD_CLOEXEC, 'int', min), 'fcntl', () => `fcntl(${fd}, F_DUPFD_CLOEXEC, ${min})`);
}

// ---- ptys -------------------------------------------------------------------------------------------

export function unlockpt(master: number): void {
  check(fn('int unlockpt(int)')(master), 'unlockpt', () => `unlockpt(${master})`);
}

/** TIOCGPTN: the pty number of a master (its slave is /dev/pts/<n> of the same devpts). */
export function ptyNumber(master: number): number {
  const buf = Buffer.alloc(4);
  check(fn('int ioctl(int, unsigned long, ...)')(master, TIOCGPTN, 'void *', buf), 'ioctl', () => `ioctl(${master}, TIOCGPTN)`);
  return buf.readUInt32LE(0);
}

/** TIOCGPTPEER: an fd for the slave side, opened through the master (no path lookup). */
export function ptyPeer(master: number, flags: number): number {
  return check(fn('int ioctl(int, unsigned long, ...)')(master, TIOCGPTPEER, 'int', flags), 'ioctl', () => `ioctl(${master}, TIOCGPTPEER)`);
}

// ---- the new mount API --------------------------------------------------------------------------

/** open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at `path` (AT_RECURSIVE: with its children). */
export function openTree(dirfd: number, path: string, flags: number): number {
  return check(
    syscall(SYS_open_tree, 'int', dirfd, 'const char *', path, 'uint', flags >>> 0),
    'open_tree',
    () => `open_tree(fd ${dirfd}, ${q(path)}, 0x${flags.toString(16)})`,
    path,
  );
}

/** move_mount(2) of the mount `fromFd` refers to onto the file `toFd` refers to. */
export function moveMount(fromFd: number, toFd: number, what: string): void {
  check(
    syscall(SYS_move_mount, 'int', fromFd, 'const char *', '', 'int', toFd, 'const char *', '', 'uint', MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    'move_mount',
    () => `move_mount(${what})`,
    what,
  );
}

export function fsopen(fstype: string): number {
  return check(syscall(SYS_fsopen, 'const char *', fstype, 'uint', FSOPEN_CLOEXEC), 'fsopen', () => `fsopen(${q(fstype)})`);
}

/** fsconfig(2): a string option ("mode" = "755"), a flag ("ro"; value undefined) or an fd option ("pidns"). */
export function fsconfig(fsfd: number, fstype: string, key: string, value?: string | { fd: number }): void {
  let ret: number;
  if (value === undefined) ret = syscall(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_SET_FLAG, 'const char *', key, 'void *', null, 'int', 0);
  else if (typeof value === 'string') ret = syscall(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_SET_STRING, 'const char *', key, 'const char *', value, 'int', 0);
  else ret = syscall(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_SET_FD, 'const char *', key, 'void *', null, 'int', value.fd);
  check(ret, 'fsconfig', () => `fsconfig(${fstype}, ${key}${typeof value === 'string' ? '=' + value : ''})`);
}

/** FSCONFIG_CMD_CREATE then fsmount(2): a detached mount of the configured filesystem. */
export function fsmount(fsfd: number, fstype: string, attrs: number): number {
  check(syscall(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_CMD_CREATE, 'void *', null, 'void *', null, 'int', 0), 'fsconfig', () => `fsconfig(${fstype}, create)`);
  return check(syscall(SYS_fsmount, 'int', fsfd, 'uint', FSMOUNT_CLOEXEC, 'uint', attrs >>> 0), 'fsmount', () => `fsmount(${fstype}, attrs 0x${attrs.toString(16)})`);
}

export { AT_EMPTY_PATH };

// ---- waitid -----------------------------------------------------------------------------------------

const P_PID = 1;
const WEXITED = 4;
const WNOHANG = 1;
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;

export interface ChildExit {
  /** CLD_EXITED, CLD_KILLED or CLD_DUMPED */
  code: number;
  /** the exit code, or the signal number */
  status: number;
}

/**
 * waitid(P_PID, pid, WEXITED|WNOHANG): reaps `pid` if it has exited. Returns undefined while it
 * runs; throws ECHILD when it is not (or no longer) our child.
 */
export function reapChild(pid: number): ChildExit | undefined {
  const info = Buffer.alloc(128);
  const ret = fn('int waitid(int, uint32_t, void *, int)')(P_PID, pid, info, WEXITED | WNOHANG);
  check(ret, 'waitid', () => `waitid(${pid})`);
  // siginfo_t: si_signo, si_errno, si_code, (pad), si_pid @16, si_uid @20, si_status @24
  if (info.readInt32LE(16) === 0) return undefined;
  return { code: info.readInt32LE(8), status: info.readInt32LE(24) };
}

// ---- posix_spawn ------------------------------------------------------------------------------------

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;

/** One step the spawned child takes before execve, in order (glibc file actions). */
export type SpawnAction =
  | { op: 'fchdir'; fd: number }
  | { op: 'chdir'; path: string }
  | { op: 'open'; fd: number; path: string; flags: number; mode?: number }
  | { op: 'close'; fd: number }
  | { op: 'dup2'; fd: number; newfd: number }
  | { op: 'closefrom'; fd: number };

export interface SpawnOptions {
  path: string;
  argv: readonly string[];
  env: readonly string[];
  actions: readonly SpawnAction[];
  /** start a new session (the child is its leader) */
  setsid?: boolean;
}

/**
 * posix_spawn(3) from the calling thread: the child is cloned from this thread (its namespaces,
 * root, cwd, credentials, capabilities, no_new_privs and cgroup), runs `actions`, resets every
 * signal to its default disposition with an empty mask, and executes `path`. glibc clones with
 * CLONE_VM|CLONE_VFORK, so this call blocks the calling thread until the child has executed the
 * program (or failed, when the errno of the failing step is thrown). Returns the child's pid.
 */
export function posixSpawn(opts: SpawnOptions): number {
  const actions = Buffer.alloc(512);
  const attr = Buffer.alloc(512);
  const sigset = Buffer.alloc(128);
  const rc = (ret: number, call: string) => {
    if (ret !== 0) throw new SyscallError(call, ret, call);
  };
  rc(fn('int posix_spawn_file_actions_init(void *)')(actions), 'posix_spawn_file_actions_init');
  try {
    rc(fn('int posix_spawnattr_init(void *)')(attr), 'posix_spawnattr_init');
    try {
      for (const a of opts.actions) {
        switch (a.op) {
          case 'fchdir':
            rc(fn('int posix_spawn_file_actions_addfchdir_np(void *, int)')(actions, a.fd), 'posix_spawn_file_actions_addfchdir_np');
            break;
          case 'chdir':
            rc(fn('int posix_spawn_file_actions_addchdir_np(void *, const char *)')(actions, a.path), 'posix_spawn_file_actions_addchdir_np');
            break;
          case 'open':
            rc(fn('int posix_spawn_file_actions_addopen(void *, int, const char *, int, uint32_t)')(actions, a.fd, a.path, a.flags, a.mode ?? 0), 'posix_spawn_file_actions_addopen');
            break;
          case 'close':
            rc(fn('int posix_spawn_file_actions_addclose(void *, int)')(actions, a.fd), 'posix_spawn_file_actions_addclose');
            break;
          case 'dup2':
            rc(fn('int posix_spawn_file_actions_adddup2(void *, int, int)')(actions, a.fd, a.newfd), 'posix_spawn_file_actions_adddup2');
            break;
          case 'closefrom':
            rc(fn('int posix_spawn_file_actions_addclosefrom_np(void *, int)')(actions, a.fd), 'posix_spawn_file_actions_addclosefrom_np');
            break;
        }
      }
      let flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
      if (opts.setsid) flags |= POSIX_SPAWN_SETSID;
      rc(fn('int posix_spawnattr_setflags(void *, short)')(attr, flags), 'posix_spawnattr_setflags');
      fn('int sigfillset(void *)')(sigset);
      rc(fn('int posix_spawnattr_setsigdefault(void *, void *)')(attr, sigset), 'posix_spawnattr_setsigdefault');
      fn('int sigemptyset(void *)')(sigset);
      rc(fn('int posix_spawnattr_setsigmask(void *, void *)')(attr, sigset), 'posix_spawnattr_setsigmask');
      const pidBuf = Buffer.alloc(4);
      const ret = fn('int posix_spawn(void *, const char *, void *, void *, const char **, const char **)')(
        pidBuf,
        opts.path,
        actions,
        attr,
        [...opts.argv, null],
        [...opts.env, null],
      );
      if (ret !== 0) throw new SyscallError('posix_spawn', ret, `exec ${q(opts.path)}`, opts.path);
      return pidBuf.readInt32LE(0);
    } finally {
      fn('int posix_spawnattr_destroy(void *)')(attr);
    }
  } finally {
    fn('int posix_spawn_file_actions_destroy(void *)')(actions);
  }
}
