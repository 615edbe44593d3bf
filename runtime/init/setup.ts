// The init stage, as run by an init worker thread (worker.ts) of the long-lived caller.
//
// The thread has unshared CLONE_FS, so chdir/pivot_root/umask and the namespaces it creates or
// joins are its own; credentials, capabilities and no_new_privs are per thread too. It builds the
// container around itself, then posix_spawn()s the workload: the child is cloned from this thread
// (so it is PID 1 of a new PID namespace, inside the new root, with the workload's credentials)
// and, before executing the program, blocks opening the exec FIFO for writing. The caller's
// thread finishes what needs the process to exist (procfs for the new PID namespace, rlimits,
// oom_score_adj), and start() opens the FIFO for reading: the child goes on and executes the
// program. glibc's posix_spawn blocks this thread until then, and the thread is never reused.
//
// Nothing here may load a module or touch a host path after pivot_root or setns(mount): every
// require happens at import, host files are opened first and used by fd.
import * as fs from 'fs';
import * as path from 'path';
import {
  ambientClearAll,
  ambientRaise,
  capbsetDrop,
  capbsetRead,
  capset,
  lastCap,
} from '../native/caps';
import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUTS,
  MNT_DETACH,
  MS_BIND,
  MS_REC,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOCTTY,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
} from '../native/constants';
import { chdir, fchdir, umask } from '../native/fs';
import { mount, pivotRoot, umount2 } from '../native/mount';
import { sethostname, setdomainname, setns, unshare } from '../native/ns';
import { setgroups, setKeepCaps, setNoNewPrivs, setresgid, setresuid } from '../native/proc';
import type { DeferredMount, ExecJob, InitJob, StdioPlan } from './messages';
import { closeQuietly, ensureDir, ensureFile, fdPath, openIn } from './fsroot';
import { applyMount, detachedBind, makeDevice, maskPath, readonlyPath, readonlyRoot, setupDevLinks } from './mounts';
import type { InitPlan, ProcessPlan } from './plan';
import { cleanPath, isWithin } from './plan';
import { posixSpawn, ptyNumber, ptyPeer, SpawnAction, unlockpt } from './sys';

export const FIFO_NAME = 'exec.fifo';
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const NS_FLAG: Record<string, number> = {
  pid: CLONE_NEWPID,
  network: CLONE_NEWNET,
  mount: CLONE_NEWNS,
  ipc: CLONE_NEWIPC,
  uts: CLONE_NEWUTS,
  cgroup: CLONE_NEWCGROUP,
};

/** A failure with the step it happened in and, when it is the spec's fault, a kind. */
export class SetupError extends Error {
  constructor(
    readonly phase: string,
    override readonly cause: unknown,
    readonly kind?: string,
  ) {
    super(`${phase}: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'SetupError';
  }
  get code(): string | undefined {
    return (this.cause as { code?: string })?.code;
  }
}

/** Runs `fn` as step `phase`: its errors become SetupErrors naming the step. */
function step<T>(phase: string, fn: () => T, kind?: (err: unknown) => string | undefined): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SetupError) throw err;
    throw new SetupError(phase, err, kind?.(err));
  }
}

/** Errors from resolving/creating paths inside the rootfs are the spec's or the image's fault. */
const pathKind = (err: unknown) => {
  const code = (err as { code?: string })?.code;
  return code === 'ELOOP' || code === 'ENOTDIR' || code === 'EXDEV' || code === 'ENOENT' || code === 'EISDIR' || (err as Error)?.name === 'RootPathError'
    ? 'InvalidArgument'
    : undefined;
};

export interface ParkingInfo {
  master?: number;
  peer?: number;
  deferred: DeferredMount[];
}

export interface Hooks {
  /** called just before the thread clones the workload (and blocks); the fds belong to the caller from then on */
  parking(info: ParkingInfo): void;
}

/** The fds this thread opened and must close before it ends (the fd table is the process's). */
class Fds {
  private readonly open = new Set<number>();
  add(fd: number): number {
    this.open.add(fd);
    return fd;
  }
  closeAll(): void {
    for (const fd of this.open) closeQuietly(fd);
    this.open.clear();
  }
}

// ---- init -------------------------------------------------------------------------------------------

/** Builds the container and clones its workload; returns the workload's pid once it has executed. */
export function runInit(job: InitJob, hooks: Hooks): number {
  const plan = job.plan;
  const fds = new Fds();
  const deferred: DeferredMount[] = [];
  let master: number | undefined;
  let peer: number | undefined;
  try {
    const fifoDir = step('open the exec FIFO directory', () => fds.add(fs.openSync(job.fifoDir, O_PATH | O_DIRECTORY | O_CLOEXEC)));
    const hostNull = fds.add(fs.openSync('/dev/null', O_PATH | O_CLOEXEC));
    enterNamespaces(plan, fds);
    let slavePath: string | undefined;
    if (plan.newMountNamespace) {
      const rootFd = step('prepare the rootfs', () => {
        mount(null, '/', null, plan.rootPropagation);
        mount(plan.rootfs, plan.rootfs, null, MS_BIND | MS_REC);
        return fds.add(fs.openSync(plan.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC));
      });
      umask(0);
      mountAll(plan, rootFd, deferred);
      step('create the working directory', () => closeQuietly(ensureDir(rootFd, plan.process.cwd)), pathKind);
      if (plan.setupDev) {
        for (const d of plan.devices) step(`create device ${d.path}`, () => makeDevice(rootFd, d), pathKind);
        step('create /dev links', () => setupDevLinks(rootFd), pathKind);
      }
      if (job.stdio.kind === 'terminal') {
        const pty = step('create the console', () => openConsole(rootFd, true));
        ({ master, peer, slavePath } = pty);
      }
      for (const [key, value] of plan.sysctl) step(`sysctl ${key}`, () => writeSysctl(key, value));
      for (const p of plan.readonlyPaths) if (p.phase === 'worker') step(`read-only path ${p.path}`, () => readonlyPath(rootFd, p.path), pathKind);
      for (const p of plan.masked) if (p.phase === 'worker') step(`masked path ${p.path}`, () => maskPath(rootFd, p.path, hostNull), pathKind);
      if (plan.readonlyRoot) step('make the rootfs read-only', () => readonlyRoot(rootFd));
      step('pivot_root', () => {
        fchdir(rootFd);
        pivotRoot('.', '.');
        umount2('.', MNT_DETACH);
        chdir('/');
      });
    } else {
      // a joined mount namespace: setns() made its root ours; nothing is mounted
      if (job.stdio.kind === 'terminal') {
        const rootFd = fds.add(fs.openSync('/', O_PATH | O_DIRECTORY | O_CLOEXEC));
        const pty = step('create the console', () => openConsole(rootFd, false));
        ({ master, peer, slavePath } = pty);
      }
      for (const [key, value] of plan.sysctl) step(`sysctl ${key}`, () => writeSysctl(key, value));
    }
    if (plan.hostname !== undefined) step('sethostname', () => sethostname(plan.hostname!));
    if (plan.domainname !== undefined) step('setdomainname', () => setdomainname(plan.domainname!));
    return spawnWorkload(plan.process, job.stdio, fifoDir, slavePath, () => {
      hooks.parking({ master, peer, deferred });
      master = peer = undefined; // the caller's now
      deferred.length = 0;
    });
  } catch (err) {
    closeQuietly(master);
    closeQuietly(peer);
    for (const d of deferred) closeQuietly(d.treeFd);
    throw err;
  } finally {
    fds.closeAll();
  }
}

function enterNamespaces(plan: InitPlan, fds: Fds): void {
  const joins = plan.joins.map((j) => ({ ...j, fd: step(`open namespace ${j.path}`, () => fds.add(fs.openSync(j.path, O_RDONLY | O_CLOEXEC)), pathKind) }));
  for (const j of joins) step(`join the ${j.type} namespace ${j.path}`, () => setns(j.fd, NS_FLAG[j.type] ?? 0), () => 'InvalidArgument');
  if (plan.unshareFlags) step('create namespaces', () => unshare(plan.unshareFlags));
}

function mountAll(plan: InitPlan, rootFd: number, deferred: DeferredMount[]): void {
  const helperDests: string[] = [];
  for (const m of plan.mounts) {
    const what = `mount ${m.type} on ${m.destination}`;
    if (m.phase === 'worker') {
      step(what, () => applyMount(rootFd, m, plan.cgroupMount), pathKind);
      continue;
    }
    // helper phase: make sure the target exists now (the root may become read-only), unless it
    // lies inside an earlier helper mount (it will exist in that filesystem)
    const nested = helperDests.some((d) => isWithin(m.destination, d));
    helperDests.push(m.destination);
    if (m.bind) {
      const isDir = step(what, () => fs.statSync(m.source).isDirectory());
      if (!nested) step(what, () => closeQuietly(isDir ? ensureDir(rootFd, m.destination) : ensureFile(rootFd, m.destination)), pathKind);
      const treeFd = step(what, () => detachedBind(m));
      deferred.push({ mount: m, treeFd, isDir });
    } else {
      if (!nested) step(what, () => closeQuietly(ensureDir(rootFd, m.destination)), pathKind);
      deferred.push({ mount: m, isDir: true });
    }
  }
}

/**
 * A pty of the container's devpts (through its /dev/ptmx) and, in a new root, /dev/console bound to
 * it. `peer` is a slave fd (O_NOCTTY) the caller keeps open until the workload has started, so
 * that reading the master blocks instead of failing with EIO before the workload opens its side.
 */
function openConsole(rootFd: number, bindConsole: boolean): { master: number; peer: number; slavePath: string } {
  let master: number;
  try {
    master = openIn(rootFd, '/dev/ptmx', O_RDWR | O_NOCTTY);
  } catch (err) {
    throw new Error(`a terminal needs the container's /dev/ptmx and a devpts mount on /dev/pts: ${(err as Error).message}`);
  }
  let peer: number | undefined;
  try {
    unlockpt(master);
    const n = ptyNumber(master);
    peer = ptyPeer(master, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (bindConsole) {
      const target = ensureFile(rootFd, '/dev/console', 0o600);
      try {
        mount(fdPath(peer), fdPath(target), null, MS_BIND);
      } finally {
        closeQuietly(target);
      }
    }
    return { master, peer, slavePath: `/dev/pts/${n}` };
  } catch (err) {
    closeQuietly(peer);
    closeQuietly(master);
    throw err;
  }
}

/** Writes a (namespaced, validated) sysctl through the host's /proc, which shows this thread's namespaces' values. */
function writeSysctl(key: string, value: string): void {
  const file = path.posix.join('/proc/sys', key.replace(/\./g, '/'));
  fs.writeFileSync(file, value);
}

// ---- exec ---------------------------------------------------------------------------------------------

/** Joins a running container's namespaces and clones a process there; returns its pid once it has executed. */
export function runExec(job: ExecJob, hooks: Hooks): number {
  const fds = new Fds();
  let master: number | undefined;
  let peer: number | undefined;
  try {
    const fifoDir = step('open the exec FIFO directory', () => fds.add(fs.openSync(job.fifoDir, O_PATH | O_DIRECTORY | O_CLOEXEC)));
    const nsFds = job.namespaces.map((n) => ({ ...n, fd: step(`open namespace ${n.path}`, () => fds.add(fs.openSync(n.path, O_RDONLY | O_CLOEXEC)), () => 'NotFound') }));
    for (const n of nsFds) step(`join the ${n.type} namespace`, () => setns(n.fd, NS_FLAG[n.type] ?? 0));
    let slavePath: string | undefined;
    if (job.stdio.kind === 'terminal') {
      const rootFd = fds.add(fs.openSync('/', O_PATH | O_DIRECTORY | O_CLOEXEC));
      const pty = step('create the console', () => openConsole(rootFd, false));
      ({ master, peer, slavePath } = pty);
    }
    return spawnWorkload(job.process, job.stdio, fifoDir, slavePath, () => {
      hooks.parking({ master, peer, deferred: [] });
      master = peer = undefined;
    });
  } catch (err) {
    closeQuietly(master);
    closeQuietly(peer);
    throw err;
  } finally {
    fds.closeAll();
  }
}

// ---- the workload -----------------------------------------------------------------------------------

/** Credentials, capabilities and no_new_privs on this thread, in runc's order (finalizeNamespace). */
export function applyCredentials(p: ProcessPlan): void {
  umask(p.umask);
  if (p.noNewPrivileges) setNoNewPrivs();
  if (p.caps?.bounding !== undefined) {
    const keep = p.caps.bounding;
    for (let cap = 0; cap <= lastCap(); cap++) {
      if (!(keep & (1n << BigInt(cap))) && capbsetRead(cap)) capbsetDrop(cap);
    }
  }
  setKeepCaps(true);
  setgroups(p.additionalGids);
  setresgid(p.gid, p.gid, p.gid);
  setresuid(p.uid, p.uid, p.uid);
  setKeepCaps(false);
  if (p.caps) {
    capset({ effective: p.caps.effective, permitted: p.caps.permitted, inheritable: p.caps.inheritable });
    if (p.caps.ambient !== undefined) {
      ambientClearAll();
      for (let cap = 0; cap <= lastCap(); cap++) if (p.caps.ambient & (1n << BigInt(cap))) ambientRaise(cap);
    }
  }
}

function envValue(env: readonly string[], key: string): string | undefined {
  for (let i = env.length - 1; i >= 0; i--) if (env[i].startsWith(key + '=')) return env[i].slice(key.length + 1);
  return undefined;
}

/** HOME from the container's /etc/passwd for `uid` ("/" when absent), as runc sets it. */
function homeOf(uid: number): string {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 6 && Number(f[2]) === uid && f[5]) return f[5];
    }
  } catch {
    /* no passwd file */
  }
  return '/';
}

/** args[0] as runc's exec.LookPath finds it (in the container's root, as the workload's user). */
export function resolveExecutable(arg0: string, env: readonly string[], cwd: string): string {
  const usable = (p: string) => {
    try {
      if (!fs.statSync(p).isFile()) return false;
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (arg0.includes('/')) {
    const full = path.posix.resolve(cwd, arg0);
    if (!fs.existsSync(full)) throw Object.assign(new Error(`exec: ${JSON.stringify(arg0)}: no such file or directory`), { code: 'ENOENT' });
    return arg0;
  }
  for (const dir of (envValue(env, 'PATH') ?? DEFAULT_PATH).split(':')) {
    const candidate = path.posix.join(path.posix.resolve(cwd, dir || '.'), arg0);
    if (usable(candidate)) return candidate;
  }
  throw Object.assign(new Error(`exec: ${JSON.stringify(arg0)}: executable file not found in $PATH`), { code: 'ENOENT' });
}

/**
 * Applies the credentials to this thread and clones the workload, which parks on the exec FIFO:
 * fchdir to the FIFO's directory, open exec.fifo for writing (blocks until start() opens it for
 * reading), chdir to cwd, stdio onto 0–2, close everything else, execve.
 */
function spawnWorkload(p: ProcessPlan, stdio: StdioPlan, fifoDir: number, slavePath: string | undefined, parking: () => void): number {
  step('set credentials and capabilities', () => applyCredentials(p));
  const env = [...p.env];
  if (envValue(env, 'HOME') === undefined) env.push(`HOME=${homeOf(p.uid)}`);
  const exe = step('find the program', () => resolveExecutable(p.args[0], env, cleanPath(p.cwd)), () => 'InvalidArgument');
  step('check the working directory', () => {
    if (!fs.statSync(p.cwd).isDirectory()) throw Object.assign(new Error(`cwd ${JSON.stringify(p.cwd)} is not a directory`), { code: 'ENOTDIR' });
  }, () => 'InvalidArgument');
  const actions: SpawnAction[] = [
    { op: 'fchdir', fd: fifoDir },
    { op: 'open', fd: 0, path: FIFO_NAME, flags: O_WRONLY | O_CLOEXEC },
    { op: 'close', fd: 0 },
    { op: 'chdir', path: p.cwd },
  ];
  if (stdio.kind === 'terminal') {
    if (!slavePath) throw new SetupError('console', new Error('no pty was created'));
    // opened without O_NOCTTY by a session leader: it becomes the controlling terminal
    actions.push({ op: 'open', fd: 0, path: slavePath, flags: O_RDWR }, { op: 'dup2', fd: 0, newfd: 1 }, { op: 'dup2', fd: 0, newfd: 2 });
  } else {
    stdio.fds.forEach((fd, i) => actions.push({ op: 'dup2', fd, newfd: i }));
  }
  actions.push({ op: 'closefrom', fd: 3 });
  parking();
  return step('start the workload', () => posixSpawn({ path: exe, argv: p.args, env, actions, setsid: true }));
}
