// Creating, starting, signalling and deleting containers and exec processes (the caller's side).
//
// create: validate the spec → cgroup → take an init worker thread (warm from the pool, or cold)
//   → put the thread in the container's cgroup → the thread builds the namespaces and rootfs,
//   sets the credentials and clones the workload, which parks before execve on the exec FIFO →
//   find the workload's pid (a child of that thread) → the namespace helper mounts procfs for the
//   new PID namespace (and what lies beneath it) and sets the rlimits → oom_score_adj → the thread
//   leaves the cgroup. The container is "created": its init process exists (pid known, as runc
//   reports it at create), in all its namespaces and cgroup, with its credentials, but has not
//   executed the user's program.
// start: open the FIFO for reading; the workload's open completes, it execs the program.
//
// Caveat of parking inside glibc's posix_spawn: until start, the parked process shares the
// caller's address space (CLONE_VM|CLONE_VFORK), so `ps` shows the caller's memory for it and a
// memory-cgroup OOM kill chosen against it before start would also hit the caller. Keep
// create→start short when the container's memory cgroup can be under pressure (a pod's).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { createCgroup, normalizeCgroupPath } from '../cgroups';
import { cgroupMode, v1Hierarchies } from '../cgroups/mode';
import type { Cgroup, LinuxDeviceCgroup, LinuxResources } from '../cgroups/types';
import { isErrno } from '../native/errno';
import { kill as sendSignal } from '../native/proc';
import { setWinsize, Winsize } from '../native/pty';
import { NAMESPACE_PROC_NAMES, O_NONBLOCK, O_RDONLY } from '../native/constants';
import { rootfsPath, loadSpec } from '../oci/load';
import type { Process as ProcessSpec, RunnableSpec } from '../oci/types';
import { validateProcess, validateSpec, ValidateOptions } from '../oci/validate';
import { moveThread, threadCgroupTasks } from './cgroup-thread';
import { closeQuietly } from './fsroot';
import { NamespaceHelper, sharedNamespaceHelper } from './helper';
import type { DeferredMount, ExecJob, InitJob, StdioPlan } from './messages';
import { CgroupMountInfo, planInit, planProcess, ProcessPlan } from './plan';
import { InitWorker, InitWorkerPool } from './pool';
import { ExitStatus, Reaper } from './reaper';
import { FIFO_NAME } from './setup';
import { prepareStdio, StdioOptions, wantsTerminal } from './stdio';
import { mkfifo } from './sys';

export type { ExitStatus } from './reaper';

/** The threads and the reaper containers share; one per process unless a caller builds its own. */
export interface InitRuntime {
  pool: InitWorkerPool;
  helper: NamespaceHelper;
  reaper: Reaper;
}

let shared: InitRuntime | undefined;

export function sharedRuntime(): InitRuntime {
  return (shared ??= { pool: new InitWorkerPool(), helper: sharedNamespaceHelper(), reaper: new Reaper() });
}

export type ProcessStatus = 'created' | 'running' | 'stopped';

/** The pty of a process started with a terminal. The caller reads and writes `master`. */
export interface Pty {
  readonly master: number;
  resize(size: Winsize): void;
}

/** runc's always-allowed device rules, appended after a spec's own (libcontainer/specconv AllowedDevices). */
export const RUNC_ALLOWED_DEVICES: readonly LinuxDeviceCgroup[] = [
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
];

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

// ---- launching a parked process ----------------------------------------------------------------

/** Milliseconds from the start of create to the end of each step (for benchmarks and logs). */
export type CreateTimings = Record<string, number>;

function stopwatch(): { timings: CreateTimings; mark: (step: string) => void } {
  const t0 = process.hrtime.bigint();
  const timings: CreateTimings = {};
  return { timings, mark: (step) => (timings[step] = Number(process.hrtime.bigint() - t0) / 1e6) };
}

interface Launched {
  timings: CreateTimings;
  watchMark?: (step: string) => void;
  worker: InitWorker;
  pid: number;
  exit: Promise<ExitStatus>;
  master?: number;
  /** the pty's slave side, held until start */
  peer?: number;
  stateDir: string;
}

interface LaunchArgs {
  id: string;
  runtime: InitRuntime;
  job: Omit<InitJob, 'fifoDir'> | Omit<ExecJob, 'fifoDir'>;
  process: ProcessPlan;
  /** the cgroup, possibly still being created (needed only once the process exists, unless threadInCgroup) */
  cgroup?: Promise<Cgroup | undefined>;
  stateDir?: string;
  warm?: boolean;
  /** false: the pool is not refilled after this job (default true) */
  refill?: boolean;
  masked: string[];
  readonlyPaths: string[];
  watch: ReturnType<typeof stopwatch>;
  /** a worker already being acquired (so that it starts while the cgroup is made) */
  worker?: Promise<InitWorker>;
  /**
   * The worker thread must be in the cgroup while it sets up (it creates a cgroup namespace, whose
   * root is its cgroup). Otherwise the parked process is moved in, which is cheaper: v1 moves cost
   * about a millisecond per hierarchy, and the thread would have to move back out.
   */
  threadInCgroup?: boolean;
}

/** A private directory (0711) holding exec.fifo (0622, as runc's), for one process. */
function makeStateDir(parent: string | undefined, id: string): string {
  const base = parent ?? os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, `berth-${id.slice(0, 32)}-`));
  fs.chmodSync(dir, 0o711);
  const fifo = path.join(dir, FIFO_NAME);
  mkfifo(fifo, 0o622);
  fs.chmodSync(fifo, 0o622);
  return dir;
}

/** The workload's pid: the only child of the worker thread, which appears right after 'parking'. */
async function findChild(worker: InitWorker): Promise<number> {
  const file = `/proc/self/task/${worker.tid}/children`;
  let failure: unknown;
  worker.spawned.catch((err) => (failure = err));
  const deadline = Date.now() + 10_000;
  for (let i = 0; ; i++) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      /* the thread ended */
    }
    const pid = parseInt(text, 10);
    if (pid > 0) return pid;
    if (failure) throw failure;
    if (Date.now() > deadline) throw new BerthError('Internal', `init worker thread ${worker.tid}: the workload process did not appear`);
    await new Promise((r) => (i < 100 ? setImmediate(r) : setTimeout(r, 1)));
  }
}

/** oom_score_adj, clamped to this process's own (lowering it needs CAP_SYS_RESOURCE; containerd's restrict_oom_score_adj). */
function setOomScoreAdj(pid: number, requested: number): void {
  const own = parseInt(fs.readFileSync('/proc/self/oom_score_adj', 'utf8'), 10) || 0;
  fs.writeFileSync(`/proc/${pid}/oom_score_adj`, String(Math.max(requested, own)));
}

async function launch(a: LaunchArgs): Promise<Launched> {
  const { runtime } = a;
  const { mark, timings } = a.watch;
  const stateDir = makeStateDir(a.stateDir, a.id);
  let worker: InitWorker | undefined;
  let pid: number | undefined;
  let exit: Promise<ExitStatus> | undefined;
  let master: number | undefined;
  let peer: number | undefined;
  let deferred: DeferredMount[] = [];
  let savedCgroups: string[] | undefined;
  let cgroup: Cgroup | undefined;
  try {
    worker = await (a.worker ?? runtime.pool.acquire({ warm: a.warm }));
    mark(worker.cold ? 'coldWorker' : 'warmWorker');
    if (a.threadInCgroup) {
      cgroup = await a.cgroup;
      if (cgroup?.version === 1) {
        savedCgroups = await threadCgroupTasks(worker.tid);
        await cgroup.addThread(worker.tid);
        mark('threadInCgroup');
      }
    }
    worker.run({ ...a.job, fifoDir: stateDir } as InitJob | ExecJob);
    const parking = await worker.parking;
    mark('setUp');
    master = parking.master;
    peer = parking.peer;
    deferred = parking.deferred;
    pid = await findChild(worker);
    mark('parked');
    exit = runtime.reaper.watch(pid);
    const p = a.process;
    // while the helper works: the thread leaves the container's cgroup, or the process joins it
    const tid = worker.tid;
    const saved = savedCgroups;
    const cgroupMoves = saved
      ? moveThread(tid, saved)
      : (async () => {
          cgroup = await a.cgroup;
          if (cgroup) {
            await cgroup.add(pid!);
            mark('inCgroup');
          }
        })();
    cgroupMoves.catch(() => undefined);
    if (p.rlimits.length || deferred.length || a.masked.length || a.readonlyPaths.length) {
      const mounts = deferred;
      deferred = []; // the helper owns (and closes) the detached mounts from here
      await runtime.helper.finish({ pid, uid: p.uid, gid: p.gid, rlimits: p.rlimits, mounts, masked: a.masked, readonlyPaths: a.readonlyPaths });
      mark('helperDone');
    }
    if (p.oomScoreAdj !== undefined) setOomScoreAdj(pid, p.oomScoreAdj);
    if (p.consoleSize && master !== undefined) setWinsize(master, { rows: p.consoleSize.height, cols: p.consoleSize.width });
    await cgroupMoves;
    savedCgroups = undefined;
    mark('created');
    if (a.refill !== false) runtime.pool.refill();
    return { timings, watchMark: mark, worker, pid, exit, master, peer, stateDir };
  } catch (err) {
    if (a.refill !== false) runtime.pool.refill();
    if (pid !== undefined) {
      try {
        sendSignal(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await exit;
    }
    if (worker) {
      if (savedCgroups) await moveThread(worker.tid, savedCgroups).catch(() => undefined);
      // a thread whose child was never found may still be blocked in posix_spawn: do not wait forever
      await Promise.race([worker.spawned.catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
      await worker.terminate();
    }
    closeQuietly(master);
    closeQuietly(peer);
    for (const d of deferred) closeQuietly(d.treeFd);
    fs.rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
}

// ---- a started-or-startable process --------------------------------------------------------------

abstract class WorkloadProcess {
  readonly id: string;
  /** host pid of the process (known from create on: it exists, parked before execve) */
  readonly pid: number;
  readonly pty?: Pty;
  /** ms from the start of create to the end of each step ("created", "started", …) */
  readonly timings: CreateTimings;
  protected readonly launched: Launched;
  private readonly ownedStdio: number[];
  private _status: ProcessStatus = 'created';
  private _exit?: ExitStatus;
  private startPromise?: Promise<number>;
  /** the threads and reaper this process was started with (exec reuses them) */
  readonly runtime: InitRuntime;

  protected constructor(id: string, launched: Launched, ownedStdio: number[], runtime: InitRuntime) {
    this.id = id;
    this.launched = launched;
    this.pid = launched.pid;
    this.timings = launched.timings;
    this.ownedStdio = ownedStdio;
    this.runtime = runtime;
    if (launched.master !== undefined) {
      const master = launched.master;
      this.pty = { master, resize: (size) => setWinsize(master, size) };
    }
    void launched.exit.then((s) => {
      this._exit = s;
      this._status = 'stopped';
    });
  }

  get status(): ProcessStatus {
    return this._status;
  }

  /** The exit status once the process has exited. */
  get exitStatus(): ExitStatus | undefined {
    return this._exit;
  }

  /** Lets the parked process execute its program; resolves with its pid once it has. */
  start(): Promise<number> {
    if (this.startPromise) return this.startPromise;
    if (this._exit) return Promise.reject(new BerthError('FailedPrecondition', `process ${this.id} has already exited`));
    this.startPromise = this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<number> {
    const fifo = path.join(this.launched.stateDir, FIFO_NAME);
    // a reader makes the workload's blocked open(O_WRONLY) return; kept open until it has
    const reader = fs.openSync(fifo, O_RDONLY | O_NONBLOCK);
    try {
      await this.launched.worker.spawned;
    } catch (err) {
      throw new BerthError((err as BerthError).kind ?? 'Unknown', `start ${this.id}: ${(err as Error).message}`);
    } finally {
      closeQuietly(reader);
      this.releaseStartResources();
    }
    this.launched.watchMark?.('started');
    if (!this._exit) this._status = 'running';
    return this.pid;
  }

  private releaseStartResources(): void {
    fs.rmSync(this.launched.stateDir, { recursive: true, force: true });
    for (const fd of this.ownedStdio.splice(0)) closeQuietly(fd);
    closeQuietly(this.launched.peer);
    this.launched.peer = undefined;
  }

  /** Resolves with the exit status (128 + signal for a signalled process). */
  wait(): Promise<ExitStatus> {
    return this.launched.exit;
  }

  /**
   * Signals the process. A created (parked) process has every signal blocked until start, so only
   * SIGKILL acts on it at once; others are delivered when it starts.
   */
  async kill(signal: NodeJS.Signals | number = 'SIGTERM'): Promise<void> {
    if (this._exit) throw new BerthError('NotFound', `process ${this.id} has exited`);
    try {
      sendSignal(this.pid, signal);
    } catch (err) {
      if (isErrno(err, 'ESRCH')) throw new BerthError('NotFound', `process ${this.id} has exited`);
      throw err;
    }
  }

  /** Stops a created process (SIGKILL), waits for the exit and releases everything this object holds. */
  protected async release(force: boolean): Promise<ExitStatus> {
    if (!this._exit) {
      if (this._status === 'running' && !force) throw new BerthError('FailedPrecondition', `process ${this.id} is running`);
      try {
        sendSignal(this.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const status = await this.launched.exit;
    await this.launched.worker.spawned.catch(() => undefined);
    await this.launched.worker.terminate();
    this.releaseStartResources();
    if (this.pty) closeQuietly(this.pty.master);
    return status;
  }
}

// ---- containers --------------------------------------------------------------------------------------

export interface CreateContainerOptions {
  /** the container id (letters, digits, "_", ".", "-"; up to 128) */
  id: string;
  /** the bundle directory (config.json, and rootfs by default) */
  bundle: string;
  /** the spec; default: <bundle>/config.json */
  spec?: RunnableSpec;
  /** the rootfs directory, already mounted; default: root.path relative to the bundle */
  rootfs?: string;
  /** fds or paths for 0–2 (missing: /dev/null), or { terminal: true } (also implied by process.terminal) */
  stdio?: StdioOptions;
  /** the cgroup to run in (the caller keeps owning it; its resources are not changed). Default: linux.cgroupsPath is created with linux.resources, and removed by delete() */
  cgroup?: Cgroup;
  /** where the per-process state directory (exec.fifo) is made; default the OS temp dir */
  stateDir?: string;
  /** validation options (e.g. allowUnsupported: ['linux.seccomp']) */
  validate?: ValidateOptions;
  /** false: start a cold worker thread even if a warm one is ready */
  warm?: boolean;
  /**
   * false: do not start a warm worker for the next job once this create is done (a process
   * expecting no other create soon saves a V8 isolate; its first exec then starts one cold)
   */
  refill?: boolean;
  runtime?: InitRuntime;
}

export class Container extends WorkloadProcess {
  readonly bundle: string;
  readonly spec: RunnableSpec;
  readonly cgroup?: Cgroup;
  private readonly ownsCgroup: boolean;
  private deleted?: Promise<ExitStatus>;

  /** @internal use createContainer() */
  constructor(args: { id: string; bundle: string; spec: RunnableSpec; cgroup?: Cgroup; ownsCgroup: boolean; launched: Launched; ownedStdio: number[]; runtime: InitRuntime }) {
    super(args.id, args.launched, args.ownedStdio, args.runtime);
    this.bundle = args.bundle;
    this.spec = args.spec;
    if (args.cgroup) this.cgroup = args.cgroup;
    this.ownsCgroup = args.ownsCgroup;
  }

  /**
   * Signals the init process, or with `all` every process of the container's cgroup (frozen while
   * signalled, so none escapes by forking).
   */
  override async kill(signal: NodeJS.Signals | number = 'SIGTERM', opts: { all?: boolean } = {}): Promise<void> {
    if (opts.all && this.cgroup) return this.cgroup.kill(signal);
    return super.kill(signal);
  }

  /** Starts another process in the running container. */
  exec(processSpec: ProcessSpec, opts: ExecOptions): Promise<ExecProcess> {
    return execProcess(this, processSpec, opts);
  }

  /**
   * Kills a created container (a running one only with `force`), waits for its exit and removes
   * what create made: the state directory, the pty master, the cgroup if create made it.
   */
  delete(opts: { force?: boolean } = {}): Promise<ExitStatus> {
    this.deleted ??= (async () => {
      const status = await this.release(opts.force === true);
      if (this.cgroup && this.ownsCgroup) await deleteCgroup(this.cgroup);
      return status;
    })();
    const d = this.deleted;
    d.catch(() => (this.deleted = undefined));
    return d;
  }
}

/** Removes a cgroup whose processes are exiting (retries while the kernel still lists them). */
async function deleteCgroup(cg: Cgroup): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await cg.delete();
      return;
    } catch (err) {
      if (i >= 100 || !(isErrno(err, 'EBUSY') || /busy|processes remain/i.test((err as Error).message))) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function withAllowedDevices(r: LinuxResources | undefined): LinuxResources | undefined {
  if (!r?.devices?.length) return r;
  return { ...r, devices: [...r.devices, ...RUNC_ALLOWED_DEVICES] };
}

/** Creates a container: everything is set up and its init process exists, parked before execve; start() runs it. */
export async function createContainer(opts: CreateContainerOptions): Promise<Container> {
  if (!ID_PATTERN.test(opts.id)) throw new BerthError('InvalidArgument', `container id ${JSON.stringify(opts.id)} is not valid`);
  const watch = stopwatch();
  const runtime = opts.runtime ?? sharedRuntime();
  const spec = opts.spec
    ? validateSpec(opts.spec, { ...opts.validate, requireRoot: opts.rootfs === undefined && opts.validate?.requireRoot !== false })
    : await loadSpec(opts.bundle, { ...opts.validate, requireRoot: opts.rootfs === undefined });
  const rootfs = path.resolve(opts.rootfs ?? rootfsPath(opts.bundle, spec));
  let st: fs.Stats;
  try {
    st = fs.statSync(rootfs);
  } catch (err) {
    throw new BerthError('NotFound', `container ${opts.id}: rootfs ${rootfs} does not exist`, { cause: err });
  }
  if (!st.isDirectory()) throw new BerthError('InvalidArgument', `container ${opts.id}: rootfs ${rootfs} is not a directory`);
  const terminal = spec.process.terminal === true || wantsTerminal(opts.stdio);

  const stdio = prepareStdio(opts.stdio, terminal);
  const ownsCgroup = !opts.cgroup && !!spec.linux?.cgroupsPath;
  // the cgroup is made while the worker thread sets up (it is needed once the process exists)
  const cgroupReady: Promise<Cgroup | undefined> = opts.cgroup
    ? Promise.resolve(opts.cgroup)
    : spec.linux?.cgroupsPath
      ? createCgroup(spec.linux.cgroupsPath, withAllowedDevices(spec.linux.resources)).then((cg) => (watch.mark('cgroupCreated'), cg))
      : Promise.resolve(undefined);
  cgroupReady.catch(() => undefined);
  const worker = runtime.pool.acquire({ warm: opts.warm !== false });
  worker.catch(() => undefined);
  try {
    let cgroupMount: Omit<CgroupMountInfo, 'viaNamespace'> | undefined;
    if ((spec.mounts ?? []).some((m) => m.type === 'cgroup')) {
      // a cgroup mount without a cgroup namespace binds the container's cgroup directories: they must exist first
      await cgroupReady;
      const cgPath = opts.cgroup?.path ?? (spec.linux?.cgroupsPath ? normalizeCgroupPath(spec.linux.cgroupsPath) : '/');
      cgroupMount = { version: cgroupMode().mode === 'unified' ? 2 : 1, hierarchies: cgroupMode().mode === 'unified' ? [] : v1Hierarchies(), path: cgPath };
    }
    const plan = planInit(spec, { id: opts.id, bundle: opts.bundle, rootfs, ...(cgroupMount ? { cgroupMount } : {}) });
    plan.process.terminal = terminal;
    const job: Omit<InitJob, 'fifoDir'> = { kind: 'init', plan, stdio: stdio.plan };
    const launched = await launch({
      id: opts.id,
      runtime,
      job,
      process: plan.process,
      cgroup: cgroupReady,
      ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
      ...(opts.warm === false ? { warm: false } : {}),
      ...(opts.refill === false ? { refill: false } : {}),
      masked: plan.masked.filter((p) => p.phase === 'helper').map((p) => p.path),
      readonlyPaths: plan.readonlyPaths.filter((p) => p.phase === 'helper').map((p) => p.path),
      watch,
      worker,
      threadInCgroup: plan.newCgroupNamespace,
    });
    const cgroup = await cgroupReady;
    return new Container({ id: opts.id, bundle: opts.bundle, spec, ...(cgroup ? { cgroup } : {}), ownsCgroup, launched, ownedStdio: stdio.owned, runtime });
  } catch (err) {
    stdio.owned.forEach(closeQuietly);
    const cgroup = await cgroupReady.catch(() => undefined);
    // a worker that never got its job is clean, but simply ended rather than returned to the pool
    await worker.then((w) => (w.hasJob ? undefined : w.terminate())).catch(() => undefined);
    if (cgroup && ownsCgroup) await deleteCgroup(cgroup).catch(() => undefined);
    if (err instanceof BerthError) throw new BerthError(err.kind, `create container ${opts.id}: ${err.message}`, { cause: err });
    throw err;
  }
}

// ---- exec --------------------------------------------------------------------------------------------

export interface ExecOptions {
  /** the exec id */
  id: string;
  stdio?: StdioOptions;
  stateDir?: string;
  validate?: ValidateOptions;
  warm?: boolean;
}

/** A process started in a running container (Tasks/Exec). */
export class ExecProcess extends WorkloadProcess {
  readonly container: Container;
  private deleted?: Promise<ExitStatus>;

  /** @internal use execProcess() */
  constructor(container: Container, id: string, launched: Launched, ownedStdio: number[], runtime: InitRuntime) {
    super(id, launched, ownedStdio, runtime);
    this.container = container;
  }

  /** Kills a created process (a running one only with `force`), waits for it and releases its resources. */
  delete(opts: { force?: boolean } = {}): Promise<ExitStatus> {
    this.deleted ??= this.release(opts.force === true);
    const d = this.deleted;
    d.catch(() => (this.deleted = undefined));
    return d;
  }
}

/**
 * Creates a process in the namespaces and cgroup of a running container (from a fresh worker
 * thread that joins them with setns), with the process spec's user, capabilities, rlimits, env,
 * cwd and terminal. Like a container, it is created parked: start() runs it.
 */
export async function execProcess(container: Container, processSpec: ProcessSpec, opts: ExecOptions): Promise<ExecProcess> {
  if (!ID_PATTERN.test(opts.id)) throw new BerthError('InvalidArgument', `exec id ${JSON.stringify(opts.id)} is not valid`);
  if (container.status !== 'running') throw new BerthError('FailedPrecondition', `container ${container.id} is ${container.status}, not running`);
  const spec = validateProcess(processSpec, opts.validate);
  const runtime = container.runtime;
  const terminal = spec.terminal === true || wantsTerminal(opts.stdio);
  const process = planProcess(spec);
  process.terminal = terminal;
  const namespaces: ExecJob['namespaces'] = [];
  let mnt: ExecJob['namespaces'][number] | undefined;
  for (const ns of container.spec.linux?.namespaces ?? []) {
    if (ns.type === 'user' || ns.type === 'time') continue;
    const entry = { type: ns.type, path: `/proc/${container.pid}/ns/${NAMESPACE_PROC_NAMES[ns.type]}` };
    if (ns.type === 'mount') mnt = entry;
    else namespaces.push(entry);
  }
  if (mnt) namespaces.push(mnt);
  const stdio = prepareStdio(opts.stdio, terminal);
  const watch = stopwatch();
  try {
    const job: Omit<ExecJob, 'fifoDir'> = { kind: 'exec', id: opts.id, namespaces, process, stdio: stdio.plan as StdioPlan };
    const launched = await launch({
      id: `${container.id}-${opts.id}`,
      runtime,
      job,
      process,
      cgroup: Promise.resolve(container.cgroup),
      ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
      ...(opts.warm === false ? { warm: false } : {}),
      masked: [],
      readonlyPaths: [],
      watch,
    });
    return new ExecProcess(container, opts.id, launched, stdio.owned, runtime);
  } catch (err) {
    stdio.owned.forEach(closeQuietly);
    if (err instanceof BerthError) throw new BerthError(err.kind, `exec ${opts.id} in ${container.id}: ${err.message}`, { cause: err });
    throw err;
  }
}
