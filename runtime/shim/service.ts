// The long-lived berth shim: serves containerd.task.v2.Task over ttrpc for the tasks of one shim
// socket (one task, or a group), runs them in-process with runtime/init, and forwards task events
// to the daemon's containerd.services.events.ttrpc.v1.Events at $TTRPC_ADDRESS.
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { Socket as NetSocket } from 'node:net';
import * as path from 'node:path';
import { encode, nowTimestamp, toAny, ZERO_TIMESTAMP, type Message, type Timestamp } from '../../proto/codec';
import { BerthError } from '../../services/errdefs';
import type { Handler } from '../../services/server/rpc';
import { mountAll, unmountAll } from '../../snapshotter/mount';
import { createContainer, execProcess, sharedRuntime, type Container, type ExecProcess } from '../init';
import type { ExitStatus } from '../init';
import type { OomWatcher } from '../cgroups/types';
import { setNonblock } from '../native/fs';
import { check, fn } from '../native/libc';
import { TtrpcClient, TtrpcServer, socketPathOf } from '../ttrpc';
import type { ShimFlags } from './main';

interface Io {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

interface Proc {
  execId: string;
  proc: Container | ExecProcess;
  io: Io;
  exit?: { status: number; at: Timestamp };
  exited: Promise<void>;
  /** fds held for the terminal copy */
  closeStdin?: () => void;
  ioDone: Promise<void>;
}

interface Task {
  id: string;
  bundle: string;
  rootfs: Message[];
  mountedRootfs: string | undefined;
  init: Proc;
  execs: Map<string, Proc>;
  paused: boolean;
  /** OOM notifications of the task's cgroup, forwarded as /tasks/oom */
  oom?: OomWatcher;
}

const C = fs.constants;

function toTimestamp(d: Date): Timestamp {
  const ms = d.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function log(msg: string): void {
  try {
    process.stderr.write(`${new Date().toISOString()} berth-shim: ${msg}\n`);
  } catch {
    /* no log reader */
  }
}

class Publisher {
  private client: Promise<TtrpcClient> | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(private address: string | undefined, private ns: string) {}

  /** A spare shim learns its daemon's event address and namespace only when it is claimed. */
  identify(address: string | undefined, ns: string): void {
    if (address !== this.address) this.client?.then((c) => c.close()).catch(() => undefined);
    if (address !== this.address) this.client = undefined;
    this.address = address;
    this.ns = ns;
    this.warm();
  }

  /** Connects ahead of the first event, off the critical path of the Create that sends it. */
  warm(): void {
    if (this.address) this.connect().catch(() => undefined);
  }

  /** Resolves once every event published so far has been forwarded (or given up on). */
  drained(): Promise<void> {
    return this.queue;
  }

  private connect(): Promise<TtrpcClient> {
    if (!this.client) {
      this.client = TtrpcClient.connect(this.address!, { timeoutMs: 5000 }).then((c) => {
        c.unref();
        c.once('close', () => (this.client = undefined));
        return c;
      });
      this.client.catch(() => (this.client = undefined));
    }
    return this.client;
  }

  /** Events go out in order; each is retried a few times. */
  publish(topic: string, type: string, event: Message): Promise<void> {
    if (!this.address) return Promise.resolve();
    const envelope = { timestamp: nowTimestamp(), namespace: this.ns, topic, event: toAny(type, event) };
    const p = this.queue.then(async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          const c = await this.connect();
          await c.service('containerd.services.events.ttrpc.v1.Events').Forward!({ envelope }, { namespace: this.ns, timeoutMs: 5000 });
          return;
        } catch (err) {
          if (attempt === 4) log(`forward ${topic}: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
        }
      }
    });
    this.queue = p;
    return p;
  }
}

function pipe(): [number, number] {
  const buf = Buffer.alloc(8);
  check(fn("int pipe2(void *, int)")(buf, 0x80000) as number, "pipe2");
  return [buf.readInt32LE(0), buf.readInt32LE(4)];
}

/**
 * A process's stdin FIFO copied into `sink` (a pipe's write end, or a pty master for a terminal).
 * For a pipe, the client closing its writer is the process's EOF; for a terminal the FIFO is held
 * open for reading and writing, so a client may leave and another attach later (as with runc).
 * `close()` (CloseIO, or the process's exit) first passes on what the client already wrote.
 */
class StdinCopy {
  private source: net.Socket | undefined;
  private fd = -1;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(fifo: string, private readonly sink: number, private readonly ownsSink: boolean) {
    // O_NONBLOCK: the open returns at once and epoll (not a threadpool thread parked in open or
    // read) waits for the client's writer; a FIFO no writer has opened yet reports no EOF.
    try {
      this.fd = fs.openSync(fifo, (ownsSink ? C.O_RDONLY : C.O_RDWR) | C.O_NONBLOCK);
    } catch {
      this.close();
      return;
    }
    const source = new NetSocket({ fd: this.fd, readable: true, writable: false });
    this.source = source;
    source.on('data', (d: Buffer) => {
      source.pause();
      this.writing = new Promise((resolve) =>
        fs.write(this.sink, d, (err) => {
          resolve();
          if (err) this.close();
          else if (!this.closed) source.resume();
        }),
      );
    });
    source.on('error', () => this.close());
    source.on('end', () => this.close());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.writing.then(async () => {
      // what the stream has buffered, then what is still in the FIFO, reaches the process first
      const pending: Buffer[] = [];
      for (let chunk = this.source?.read() as Buffer | null; chunk; chunk = this.source?.read() as Buffer | null) pending.push(chunk);
      // only while the socket still owns the fd: after its end it is closed, and the number reused
      if (this.fd >= 0 && this.source && !this.source.destroyed && this.source.readable) {
        const buf = Buffer.alloc(65536);
        for (;;) {
          let n = 0;
          try {
            n = fs.readSync(this.fd, buf);
          } catch {
            break; // EAGAIN: nothing more
          }
          if (n <= 0) break;
          pending.push(Buffer.from(buf.subarray(0, n)));
        }
      }
      const write = (b: Buffer) => new Promise<number>((resolve, reject) => fs.write(this.sink, b, (err, n) => (err ? reject(err) : resolve(n))));
      try {
        for (const chunk of pending) for (let off = 0; off < chunk.length; ) off += await write(chunk.subarray(off));
      } catch {
        // the process is gone or closed its stdin
      }
      this.source?.destroy();
      if (this.ownsSink) fs.close(this.sink, () => undefined);
    });
  }
}

/**
 * An output FIFO for writing, without parking a libuv threadpool thread in open(2) (a grouped
 * shim with a few tasks whose clients never read would run out of them). O_WRONLY|O_NONBLOCK
 * succeeds once the client holds its reading end; a client that opens it a moment after the
 * process starts (ctr exec -t) is waited for, briefly; after that both ends are opened (O_RDWR),
 * as containerd's shim keeps them, and what the process writes waits in the pipe.
 */
async function openOutputFifo(p: string, patienceMs = 2000): Promise<number> {
  const until = Date.now() + patienceMs;
  for (;;) {
    try {
      const fd = fs.openSync(p, C.O_WRONLY | C.O_NONBLOCK);
      setNonblock(fd, false); // the workload writes to it as it is
      return fd;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err; // ENXIO: no reader yet
      if (Date.now() >= until) return fs.openSync(p, C.O_RDWR);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** Opens the FIFO paths of a process's stdio: stdout/stderr (see openOutputFifo), stdin via a pipe. */
async function openStdio(io: Io): Promise<{ stdin?: number; stdout?: number; stderr?: number; stdinCopy?: StdinCopy; close: () => void }> {
  const opened: number[] = [];
  const open = async (p: string) => {
    if (!p) return undefined;
    const fd = await openOutputFifo(p);
    opened.push(fd);
    return fd;
  };
  try {
    const [stdout, stderr] = await Promise.all([
      open(io.stdout),
      io.stderr === io.stdout || io.terminal ? Promise.resolve(undefined) : open(io.stderr),
    ]);
    let stdin: number | undefined;
    let stdinCopy: StdinCopy | undefined;
    if (io.stdin && !io.terminal) {
      const [r, w] = pipe();
      opened.push(r);
      stdin = r;
      stdinCopy = new StdinCopy(io.stdin, w, true);
    }
    return {
      ...(stdin !== undefined ? { stdin } : {}),
      ...(stdout !== undefined ? { stdout } : {}),
      ...(io.terminal ? {} : io.stderr === io.stdout ? (stdout !== undefined ? { stderr: stdout } : {}) : stderr !== undefined ? { stderr } : {}),
      ...(stdinCopy ? { stdinCopy } : {}),
      close: () => opened.splice(0).forEach((fd) => fs.close(fd, () => undefined)),
    };
  } catch (err) {
    opened.forEach((fd) => fs.close(fd, () => undefined));
    throw err;
  }
}

/** Terminal: copies the pty master to stdout (and stdin to the master, by StdinCopy). */
function copyPty(master: number, stdout: number | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const out = fs.createReadStream('', { fd: master, autoClose: false, highWaterMark: 32 * 1024 });
    out.on('data', (d) => {
      if (stdout === undefined) return;
      out.pause();
      fs.write(stdout, d as Buffer, () => out.resume());
    });
    const done = () => {
      if (stdout !== undefined) fs.close(stdout, () => undefined);
      resolve();
    };
    out.on('error', done); // EIO once the slave side is closed
    out.on('end', done);
  });
}

/** Exits at once: process.exit would wait for worker threads parked in native calls (the reaper's epoll_wait). */
function exitNow(shimDir: string): void {
  fs.rmSync(shimDir, { recursive: true, force: true });
  fn('void _exit(int)')(0);
}

/** Who a shim serves: known from its flags, or, for a spare, from the claim `start` wrote. */
export interface ShimIdentity {
  namespace: string;
  id: string;
  ttrpcAddress: string | undefined;
}

export interface ShimPlacement {
  /** Already listening at the address (a spare's); otherwise runShim binds it. */
  listener?: net.Server;
  /** The shim's own directory (socket, pid), wherever `start` has moved it since. */
  dir?: () => string;
  /** With no task left: become a spare again (true), or let the shim exit (false). */
  recycle?: () => boolean;
}

/**
 * Serves the Task API at `address` (unix://<shim dir>/sock). The returned `identify` names the
 * namespace and task of a spare shim once it is claimed.
 */
export async function runShim(f: ShimFlags, address: string, placement: ShimPlacement = {}): Promise<{ identify: (who: ShimIdentity) => void; taskCount: () => number }> {
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  process.on('SIGPIPE', () => undefined);
  let ns = f.namespace;
  const publisher = new Publisher(process.env.TTRPC_ADDRESS, ns);
  const tasks = new Map<string, Task>();
  const sock = socketPathOf(address);
  const shimDir = placement.dir ?? (() => path.dirname(sock));
  let shuttingDown = false;
  let inflight = 0; // handler calls in progress (Shutdown waits for them)
  let warmed: Promise<void> = Promise.resolve();

  const getTask = (id: string): Task => {
    const t = tasks.get(id);
    if (!t) throw new BerthError('NotFound', `task ${id} not found`, { verbatim: true });
    return t;
  };
  const getProc = (id: string, execId: string): Proc => {
    const t = getTask(id);
    if (!execId) return t.init;
    const p = t.execs.get(execId);
    if (!p) throw new BerthError('NotFound', `process ${execId} does not exist`, { verbatim: true });
    return p;
  };

  const watchExit = (t: Task, p: Proc, proc: Container | ExecProcess): Promise<void> =>
    proc.wait().then(async (s: ExitStatus) => {
      p.closeStdin?.();
      await Promise.race([p.ioDone, new Promise((r) => setTimeout(r, 2000))]);
      p.exit = { status: s.exitStatus, at: toTimestamp(s.exitedAt) };
      void publisher.publish('/tasks/exit', 'containerd.events.TaskExit', {
        container_id: t.id,
        id: p.execId || t.id,
        pid: proc.pid,
        exit_status: s.exitStatus,
        exited_at: p.exit.at,
      });
    });

  /** containerd's shims publish /tasks/oom whenever the kernel reports an OOM in the task's memory cgroup (docker's OOMKilled). */
  const watchOom = (t: Task): OomWatcher | undefined => {
    const cg = (t.init.proc as Container).cgroup;
    if (!cg) return undefined;
    try {
      const w = cg.watchOom();
      w.on('error', (err) => log(`oom watch of ${t.id}: ${err.message}`));
      w.on('oom', () => void publisher.publish('/tasks/oom', 'containerd.events.TaskOOM', { container_id: t.id }));
      return w;
    } catch (err) {
      log(`cannot watch ${t.id} for OOM: ${(err as Error).message}`);
      return undefined;
    }
  };

  const makeProc = async (
    t: { id: string },
    execId: string,
    io: Io,
    create: (stdio: { terminal: true } | { stdin?: number; stdout?: number; stderr?: number }) => Promise<Container | ExecProcess>,
  ): Promise<Proc> => {
    const fds = await openStdio(io);
    let proc: Container | ExecProcess;
    try {
      proc = await create(io.terminal ? { terminal: true } : { ...(fds.stdin !== undefined ? { stdin: fds.stdin } : {}), ...(fds.stdout !== undefined ? { stdout: fds.stdout } : {}), ...(fds.stderr !== undefined ? { stderr: fds.stderr } : {}) });
    } catch (err) {
      fds.close();
      fds.stdinCopy?.close();
      throw err;
    }
    let ioDone: Promise<void> = Promise.resolve();
    let closeStdin: (() => void) | undefined;
    if (io.terminal && proc.pty) {
      ioDone = copyPty(proc.pty.master, fds.stdout);
      if (io.stdin) {
        const copy = new StdinCopy(io.stdin, proc.pty.master, false);
        closeStdin = () => copy.close();
      }
    } else {
      fds.close(); // the workload holds duplicates
      if (fds.stdinCopy) closeStdin = () => fds.stdinCopy!.close();
    }
    void t;
    return { execId, proc, io, exited: Promise.resolve(), ioDone, ...(closeStdin ? { closeStdin } : {}) };
  };

  const state = (t: Task, p: Proc): Message => {
    let status = 'UNKNOWN';
    if (p.exit || p.proc.status === 'stopped') status = 'STOPPED';
    else if (t.paused) status = 'PAUSED';
    else status = p.proc.status === 'created' ? 'CREATED' : 'RUNNING';
    const exitStatus = p.exit?.status ?? p.proc.exitStatus?.exitStatus ?? 0;
    const exitedAt = p.exit?.at ?? (p.proc.exitStatus ? toTimestamp(p.proc.exitStatus.exitedAt) : ZERO_TIMESTAMP);
    return {
      id: t.id,
      bundle: t.bundle,
      pid: p.proc.pid,
      status,
      stdin: p.io.stdin,
      stdout: p.io.stdout,
      stderr: p.io.stderr,
      terminal: p.io.terminal,
      exit_status: exitStatus,
      exited_at: exitedAt,
      exec_id: p.execId,
    };
  };

  const finished = (p: Proc) => !!p.exit || p.proc.status === 'stopped';

  const handlers: Record<string, Handler> = {
    Create: async (req: Message) => {
      const id: string = req.id;
      if (tasks.has(id)) throw new BerthError('AlreadyExists', `task ${id}`);
      const bundle: string = req.bundle || process.cwd();
      const rootfsDir = path.join(bundle, 'rootfs');
      let mounted: string | undefined;
      if (req.rootfs?.length) {
        fs.mkdirSync(rootfsDir, { recursive: true });
        await mountAll(req.rootfs, rootfsDir);
        mounted = rootfsDir;
      }
      const io: Io = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: !!req.terminal };
      await warmed;
      let init: Proc;
      try {
        init = await makeProc({ id }, '', io, (stdio) =>
          createContainer({
            id,
            bundle,
            stdio,
            stateDir: path.join(bundle, '.berth'),
            validate: { allowUnsupported: ['linux.seccomp', 'process.apparmorProfile', 'linux.mountLabel', 'process.selinuxLabel'] },
            // Another create is likely only in a grouped shim (a pod), known once it holds a
            // second task; a shim of one container keeps no warm thread it would rarely use
            // (an exec starts one, and refills after itself).
            refill: tasks.size > 0,
          }),
        );
      } catch (err) {
        if (mounted) await unmountAll(mounted).catch(() => undefined);
        throw err;
      }
      const t: Task = { id, bundle, rootfs: req.rootfs ?? [], mountedRootfs: mounted, init, execs: new Map(), paused: false };
      tasks.set(id, t);
      t.oom = watchOom(t);
      init.exited = watchExit(t, init, init.proc);
      fs.writeFileSync(path.join(bundle, 'init.pid'), String(init.proc.pid));
      void publisher.publish('/tasks/create', 'containerd.events.TaskCreate', {
        container_id: id,
        bundle,
        rootfs: req.rootfs ?? [],
        io: { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, terminal: io.terminal },
        checkpoint: '',
        pid: init.proc.pid,
      });
      log(`created ${id} pid ${init.proc.pid} at ${Math.round(process.uptime() * 1000)} ms of shim uptime; create steps ${JSON.stringify(init.proc.timings)}`);
      return { pid: init.proc.pid };
    },

    Start: async (req: Message) => {
      const t = getTask(req.id);
      const p = getProc(req.id, req.exec_id);
      if (finished(p)) throw new BerthError('FailedPrecondition', `process ${p.execId || t.id} has already exited`);
      const pid = await p.proc.start();
      if (p.execId) void publisher.publish('/tasks/exec-started', 'containerd.events.TaskExecStarted', { container_id: t.id, exec_id: p.execId, pid });
      else void publisher.publish('/tasks/start', 'containerd.events.TaskStart', { container_id: t.id, pid });
      return { pid };
    },

    State: async (req: Message) => state(getTask(req.id), getProc(req.id, req.exec_id)),

    Wait: async (req: Message) => {
      const p = getProc(req.id, req.exec_id);
      await p.proc.wait();
      await p.exited;
      return { exit_status: p.exit?.status ?? 0, exited_at: p.exit?.at ?? nowTimestamp() };
    },

    Kill: async (req: Message) => {
      const t = getTask(req.id);
      const p = getProc(req.id, req.exec_id);
      if (finished(p) && !(req.all && !p.execId)) throw new BerthError('NotFound', 'process already finished', { verbatim: true });
      try {
        if (!p.execId) await (p.proc as Container).kill(req.signal || 15, { all: !!req.all });
        else await p.proc.kill(req.signal || 15);
      } catch (err) {
        if (err instanceof BerthError && err.kind === 'NotFound') throw new BerthError('NotFound', 'process already finished', { verbatim: true });
        throw err;
      }
      if (t.paused && !p.execId && (req.signal === 9 || req.all)) {
        /* a frozen cgroup keeps SIGKILL pending; runc thaws too */
        await (t.init.proc as Container).cgroup?.thaw().catch(() => undefined);
        t.paused = false;
      }
      return {};
    },

    Exec: async (req: Message) => {
      const t = getTask(req.id);
      const execId: string = req.exec_id;
      if (t.execs.has(execId)) throw new BerthError('AlreadyExists', `id ${execId}`);
      const spec = JSON.parse(Buffer.from(req.spec?.value ?? '').toString() || '{}');
      const io: Io = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: !!req.terminal };
      if (req.terminal) spec.terminal = true;
      const p = await makeProc(t, execId, io, (stdio) =>
        execProcess(t.init.proc as Container, spec, { id: execId, stdio, stateDir: path.join(t.bundle, '.berth'), validate: { allowUnsupported: ['process.apparmorProfile', 'process.selinuxLabel'] } }),
      );
      t.execs.set(execId, p);
      p.exited = watchExit(t, p, p.proc);
      void publisher.publish('/tasks/exec-added', 'containerd.events.TaskExecAdded', { container_id: t.id, exec_id: execId });
      return {};
    },

    Pids: async (req: Message) => {
      const t = getTask(req.id);
      const cg = (t.init.proc as Container).cgroup;
      const pids = cg ? await cg.procs() : finished(t.init) ? [] : [t.init.proc.pid];
      const byPid = new Map<number, string>();
      for (const e of t.execs.values()) if (!finished(e)) byPid.set(e.proc.pid, e.execId);
      return {
        processes: pids.map((pid) => {
          const execId = byPid.get(pid);
          return execId ? { pid, info: toAny('containerd.runc.v1.ProcessDetails', { exec_id: execId }) } : { pid };
        }),
      };
    },

    Pause: async (req: Message) => {
      const t = getTask(req.id);
      const cg = (t.init.proc as Container).cgroup;
      if (!cg) throw new BerthError('FailedPrecondition', 'container has no cgroup');
      await cg.freeze();
      t.paused = true;
      void publisher.publish('/tasks/paused', 'containerd.events.TaskPaused', { container_id: t.id });
      return {};
    },

    Resume: async (req: Message) => {
      const t = getTask(req.id);
      const cg = (t.init.proc as Container).cgroup;
      if (!cg) throw new BerthError('FailedPrecondition', 'container has no cgroup');
      await cg.thaw();
      t.paused = false;
      void publisher.publish('/tasks/resumed', 'containerd.events.TaskResumed', { container_id: t.id });
      return {};
    },

    Stats: async (req: Message) => {
      const t = getTask(req.id);
      const cg = (t.init.proc as Container).cgroup;
      if (!cg) throw new BerthError('NotFound', 'container has no cgroup');
      const metrics = await cg.stats();
      return { stats: toAny(cg.metricsType, metrics as unknown as Message) };
    },

    CloseIO: async (req: Message) => {
      const p = getProc(req.id, req.exec_id);
      if (req.stdin) p.closeStdin?.();
      return {};
    },

    ResizePty: async (req: Message) => {
      const p = getProc(req.id, req.exec_id);
      if (p.exit) throw new BerthError('Unknown', 'cannot resize a stopped container', { verbatim: true });
      if (!p.proc.pty) throw new BerthError('FailedPrecondition', 'tty not found', { verbatim: true });
      try {
        p.proc.pty.resize({ rows: req.height, cols: req.width });
      } catch (err) {
        if (!finished(p)) throw err; // the process is gone, its output still being copied
      }
      return {};
    },

    Update: async (req: Message) => {
      const t = getTask(req.id);
      const cg = (t.init.proc as Container).cgroup;
      if (!cg) throw new BerthError('FailedPrecondition', 'container has no cgroup');
      const resources = JSON.parse(Buffer.from(req.resources?.value ?? '').toString() || '{}');
      await cg.update(resources);
      return {};
    },

    Delete: async (req: Message) => {
      const t = getTask(req.id);
      if (req.exec_id) {
        const p = getProc(req.id, req.exec_id);
        if (p.proc.status === 'running' && !finished(p)) throw new BerthError('FailedPrecondition', `process ${p.execId} must be stopped before deletion`);
        const s = await p.proc.delete({ force: true });
        await p.exited.catch(() => undefined);
        t.execs.delete(p.execId);
        return { pid: p.proc.pid, exit_status: p.exit?.status ?? s.exitStatus, exited_at: p.exit?.at ?? toTimestamp(s.exitedAt) };
      }
      const p = t.init;
      if (p.proc.status === 'running' && !finished(p)) throw new BerthError('FailedPrecondition', `cannot delete running task ${t.id}`);
      for (const e of t.execs.values()) await e.proc.delete({ force: true }).catch(() => undefined);
      t.oom?.close();
      const s = await (p.proc as Container).delete({ force: true });
      await Promise.race([p.exited.catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
      if (t.mountedRootfs) await unmountAll(t.mountedRootfs).catch((err) => log(`unmount ${t.mountedRootfs}: ${(err as Error).message}`));
      const res = { pid: p.proc.pid, exit_status: p.exit?.status ?? s.exitStatus, exited_at: p.exit?.at ?? toTimestamp(s.exitedAt) };
      // The `delete` sub-command containerd runs after we exit answers with this, without Node.
      fs.writeFileSync(path.join(t.bundle, '.delete-response'), encode('containerd.task.v2.DeleteResponse', res));
      fs.rmSync(path.join(t.bundle, 'init.pid'), { force: true });
      fs.rmSync(path.join(t.bundle, '.berth'), { recursive: true, force: true });
      tasks.delete(t.id);
      void publisher.publish('/tasks/delete', 'containerd.events.TaskDelete', { container_id: t.id, id: '', ...res });
      return res;
    },

    Connect: async (req: Message) => {
      const t = tasks.get(req.id);
      return { shim_pid: process.pid, task_pid: t ? t.init.proc.pid : 0, version: '' };
    },

    Shutdown: async (req: Message) => {
      if (tasks.size > 0 && !req.now) return {};
      if (!shuttingDown) {
        shuttingDown = true;
        // Calls still in progress on other connections (a grouped shim's concurrent Deletes,
        // whose tasks are already out of `tasks`) get their answers before we go. (Not
        // server.close(): libuv would unlink the path the socket was bound at, which for a
        // claimed spare is now the next spare's.)
        const deadline = Date.now() + 2000;
        const done = () => {
          // a shim that began as a spare may serve as the spare again instead of exiting
          if (tasks.size === 0 && placement.recycle?.()) shuttingDown = false;
          else exitNow(shimDir());
        };
        const exitWhenIdle = () => (inflight > 0 && Date.now() < deadline ? setTimeout(exitWhenIdle, 5) : setTimeout(done, 5));
        // the events already queued (/tasks/delete…) go out first
        void Promise.race([publisher.drained(), new Promise((r) => setTimeout(r, 2000))]).then(exitWhenIdle);
      }
      return {};
    },
  };

  const server = new TtrpcServer();
  for (const [name, handler] of Object.entries(handlers)) {
    if (name === 'Shutdown') continue;
    handlers[name] = async (...args: Parameters<Handler>) => {
      inflight++;
      try {
        return await handler(...args);
      } finally {
        inflight--;
      }
    };
  }
  server.register({ name: 'containerd.task.v2.Task', handlers });
  if (placement.listener) {
    server.serve(placement.listener);
  } else {
    fs.mkdirSync(path.dirname(sock), { recursive: true, mode: 0o700 });
    await server.listen(sock, { mode: 0o600 });
    // `start` of a grouped task checks this pid to know the shim is alive
    fs.writeFileSync(path.join(shimDir(), 'pid'), String(process.pid));
  }
  // a warm init worker for the Create that follows at once (its isolate boots off this thread)
  warmed = Promise.all([sharedRuntime().pool.prewarm(), sharedRuntime().helper.prewarm()]).then(() => undefined, () => undefined);
  publisher.warm();
  log(`listening at ${Math.round(process.uptime() * 1000)} ms of shim uptime`);
  const title = (id: string) => (process.title = `containerd-shim-berth-v1 -namespace ${ns} -id ${id}`);
  title(f.id);
  if (!placement.listener) {
    // tell `start` we listen (fd 3 is its pipe; a spare has no such fd and nobody waiting)
    try {
      fs.writeSync(3, 'ok');
      fs.closeSync(3);
    } catch {
      /* started by hand */
    }
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (tasks.size === 0) exitNow(shimDir());
    });
  }
  return {
    identify: (who: ShimIdentity) => {
      ns = who.namespace;
      publisher.identify(who.ttrpcAddress, who.namespace);
      title(who.id);
    },
    taskCount: () => tasks.size,
  };
}
