// The task manager: berthd's side of the runtime. It creates bundles, launches one shim per task
// through containerd's shim v2 protocol (so containerd's runc shim and berth-shim are driven the
// same way), keeps a ttrpc connection to each, serves the events shims forward, and on start-up
// reconnects to the shims that outlived a previous berthd (containerd-wire §7, §9.3).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { nowTimestamp, type AnyMessage, type Message } from '../../proto/codec';
import { BerthError } from '../../services/errdefs';
import type { Exchange } from '../../services/events/exchange';
import { SOCKET_DIR } from '../shim/main';
import { stopSpare } from '../shim/spare';
import { unmountAll } from '../../snapshotter/mount';
import { TtrpcServer, socketPathOf } from '../ttrpc';
import { bundlePaths, createBundle, listBundles, openShimLog, removeBundle, type BundlePaths } from './bundle';
import { Shim, type ShimLaunch } from './shim';

export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface CreateTaskOptions {
  ns: string;
  id: string;
  runtime: string;
  runtimeOptions: AnyMessage | null;
  taskOptions: AnyMessage | null;
  spec: Buffer;
  rootfs: Mount[];
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface ManagedTask {
  ns: string;
  id: string;
  runtime: string;
  shim: Shim;
  paths: BundlePaths;
  pid: number;
  /** The shim's own pid (from Connect). */
  shimPid: number;
}

export interface TaskManagerOptions {
  /** <state>/io.containerd.runtime.v2.task */
  stateRoot: string;
  /** <root>/io.containerd.runtime.v2.task */
  workRoot: string;
  grpcAddress: string;
  events: Exchange;
  log: Logger;
  /** Runtime name → shim binary, for names that do not follow containerd's naming rule. */
  runtimes?: Record<string, string>;
  /** Extra directories searched for shim binaries (berth's own bin/ first). */
  searchPath?: string[];
}

const key = (ns: string, id: string) => `${ns}/${id}`;

/** containerd's rule: io.containerd.runc.v2 → containerd-shim-runc-v2. */
export function shimBinaryName(runtime: string): string {
  const parts = runtime.split('.');
  if (parts.length < 2) throw new BerthError('InvalidArgument', `invalid runtime name ${runtime}, correct runtime name should be either format like \`io.containerd.runc.v1\` or a full path to the binary`);
  return `containerd-shim-${parts[parts.length - 2]}-${parts[parts.length - 1]}`;
}

function readAddress(bundle: string): string | undefined {
  try {
    return fs.readFileSync(path.join(bundle, 'address'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class TaskManager {
  private readonly tasks = new Map<string, ManagedTask>();
  private readonly creating = new Set<string>();
  private readonly closeLogs = new Map<string, () => void>();
  private eventsServer: TtrpcServer | undefined;
  private closing = false;

  constructor(private readonly opts: TaskManagerOptions) {}

  get ttrpcAddress(): string {
    return `${this.opts.grpcAddress}.ttrpc`;
  }

  /** Serves forwarded events, then reconnects to live shims (in parallel, each bounded). */
  async start(): Promise<void> {
    const server = new TtrpcServer({ log: this.opts.log });
    server.register({
      name: 'containerd.services.events.ttrpc.v1.Events',
      handlers: {
        Forward: async (req: Message) => {
          const env = req.envelope ?? {};
          this.opts.events.forward({ timestamp: env.timestamp, namespace: env.namespace ?? '', topic: env.topic ?? '', event: env.event });
          return {};
        },
      },
    });
    await server.listen(this.ttrpcAddress, { mode: 0o600 });
    this.eventsServer = server;
    fs.mkdirSync(this.opts.stateRoot, { recursive: true, mode: 0o711 });
    fs.mkdirSync(this.opts.workRoot, { recursive: true, mode: 0o711 });
    await Promise.all(listBundles(this.opts.stateRoot).map((b) => this.recover(b.ns, b.id)));
  }

  /** Resolves a runtime name (or an absolute path) to the shim binary. */
  resolveBinary(runtime: string): string {
    if (path.isAbsolute(runtime)) return runtime;
    const name = this.opts.runtimes?.[runtime] ?? shimBinaryName(runtime);
    const dirs = [...(this.opts.searchPath ?? []), ...(process.env.PATH ?? '').split(':'), '/usr/local/bin', '/usr/bin'];
    for (const dir of dirs) {
      if (!dir) continue;
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // keep looking
      }
    }
    throw new BerthError('NotFound', `failed to start shim: runtime ${JSON.stringify(runtime)} binary not installed ${JSON.stringify(name)}: file does not exist`);
  }

  private launch(ns: string, id: string, binary: string, paths: BundlePaths): Omit<ShimLaunch, 'options'> {
    return {
      binary,
      namespace: ns,
      id,
      bundle: paths.bundle,
      grpcAddress: this.opts.grpcAddress,
      ttrpcAddress: this.ttrpcAddress,
      publishBinary: process.argv[1] ?? process.execPath,
      log: this.opts.log.child({ ns, id }),
    };
  }

  has(ns: string, id: string): boolean {
    return this.tasks.has(key(ns, id)) || this.creating.has(key(ns, id));
  }

  get(ns: string, id: string): ManagedTask {
    const t = this.tasks.get(key(ns, id));
    if (!t) throw new BerthError('NotFound', `task ${id} not found`, { verbatim: true });
    return t;
  }

  list(ns: string): ManagedTask[] {
    return [...this.tasks.values()].filter((t) => t.ns === ns);
  }

  all(): ManagedTask[] {
    return [...this.tasks.values()];
  }

  async create(o: CreateTaskOptions): Promise<ManagedTask> {
    const k = key(o.ns, o.id);
    if (this.has(o.ns, o.id)) throw new BerthError('AlreadyExists', `task ${o.id}`);
    this.creating.add(k);
    const paths = bundlePaths(this.opts.stateRoot, this.opts.workRoot, o.ns, o.id);
    let shim: Shim | undefined;
    try {
      const binary = this.resolveBinary(o.runtime);
      if (fs.existsSync(paths.bundle)) removeBundle(paths); // left by a task that failed to start
      createBundle(paths, o.spec);
      const launch = this.launch(o.ns, o.id, binary, paths);
      this.watchLog(k, paths.bundle, launch.log);
      shim = await Shim.start({ ...launch, options: o.runtimeOptions });
      const created = await shim.call('Create', {
        id: o.id,
        bundle: paths.bundle,
        rootfs: o.rootfs,
        terminal: o.terminal,
        stdin: o.stdin,
        stdout: o.stdout,
        stderr: o.stderr,
        options: o.taskOptions ?? o.runtimeOptions,
      });
      const connected = await shim.call('Connect', { id: o.id }, { timeoutMs: 5000 });
      const task: ManagedTask = { ns: o.ns, id: o.id, runtime: o.runtime, shim, paths, pid: created.pid, shimPid: connected.shim_pid };
      this.tasks.set(k, task);
      shim.onClose(() => void this.shimGone(task));
      return task;
    } catch (err) {
      if (shim) await this.shutdownShim(shim).catch(() => undefined);
      await this.cleanupBundle(o.ns, o.id, paths, o.runtime).catch(() => undefined);
      throw err;
    } finally {
      this.creating.delete(k);
    }
  }

  /**
   * Deletes the init process, stops the shim and removes the bundle. The shim's Delete has
   * removed the container and unmounted its rootfs, so, as containerd's bundle.Delete, only a
   * rootfs still mounted is unmounted here: the shim's `delete` sub-command (a process start,
   * and for runc one more) is for shims that died.
   */
  async delete(ns: string, id: string): Promise<{ pid: number; exitStatus: number; exitedAt: Message }> {
    const task = this.get(ns, id);
    const res = await task.shim.call('Delete', { id });
    this.tasks.delete(key(ns, id));
    const address = readAddress(task.paths.bundle);
    // A shim that answered Shutdown removes its own socket (a berth shim may instead become the
    // spare again, under another name): only a shim that did not answer leaves it to us.
    const answered = await this.shutdownShim(task.shim);
    try {
      await unmountAll(path.join(task.paths.bundle, 'rootfs'));
      this.releaseBundle(ns, id, task.paths, answered ? undefined : address);
    } catch (err) {
      this.opts.log.warn({ err, ns, id }, 'bundle removal failed; running the shim cleanup');
      await this.cleanupBundle(ns, id, task.paths, task.runtime).catch((e) => this.opts.log.warn({ err: e, ns, id }, 'shim cleanup failed'));
    }
    return { pid: res.pid, exitStatus: res.exit_status, exitedAt: res.exited_at };
  }

  /** Asks the shim to exit (it stays if it serves other tasks); whether it answered. */
  private async shutdownShim(shim: Shim): Promise<boolean> {
    const answered = await shim.call('Shutdown', { id: shim.launch.id }, { timeoutMs: 3000 }).then(
      () => true,
      () => false,
    );
    await shim.close().catch(() => undefined);
    return answered;
  }

  /** After a shim is gone: its `delete` sub-command cleans up, then the bundle goes. */
  private async cleanupBundle(ns: string, id: string, paths: BundlePaths, runtime: string): Promise<{ pid: number; exitStatus: number; exitedAt: Message } | undefined> {
    let result: { pid: number; exitStatus: number; exitedAt: Message } | undefined;
    const address = readAddress(paths.bundle);
    try {
      const binaryFile = path.join(paths.bundle, 'shim-binary-path');
      const binary = fs.existsSync(binaryFile) ? fs.readFileSync(binaryFile, 'utf8') : this.resolveBinary(runtime);
      result = await Shim.cleanup(this.launch(ns, id, binary, paths));
    } finally {
      this.releaseBundle(ns, id, paths, address);
    }
    return result;
  }

  /** Stops following the shim log, removes the bundle, and a dead shim's socket (`address`) once no task uses it. */
  private releaseBundle(ns: string, id: string, paths: BundlePaths, address: string | undefined): void {
    this.closeLogs.get(key(ns, id))?.();
    this.closeLogs.delete(key(ns, id));
    removeBundle(paths);
    // A shim that died cannot remove its socket; one still serving other tasks keeps it.
    if (address && ![...this.tasks.values()].some((t) => t.shim.address === address)) {
      const sock = socketPathOf(address);
      // berth shims own a directory (sock, pid); other shims just a socket
      fs.rmSync(path.basename(sock) === 'sock' ? path.dirname(sock) : sock, { recursive: true, force: true });
    }
  }

  private watchLog(k: string, bundle: string, log: Logger): void {
    try {
      this.closeLogs.set(k, openShimLog(bundle, (line) => log.debug({ shim: line }, 'shim log')));
    } catch (err) {
      log.warn({ err }, 'cannot read the shim log');
    }
  }

  /** A shim connection closed without a Delete: the shim died. Clean up and tell subscribers. */
  private async shimGone(task: ManagedTask): Promise<void> {
    const k = key(task.ns, task.id);
    if (this.closing || this.tasks.get(k) !== task) return;
    this.tasks.delete(k);
    this.opts.log.warn({ ns: task.ns, id: task.id }, 'shim disconnected; cleaning up its task');
    const res = await this.cleanupBundle(task.ns, task.id, task.paths, task.runtime).catch(() => undefined);
    this.publishDeadShim(task.ns, task.id, res?.pid ?? task.pid, res?.exitStatus ?? 255, res?.exitedAt);
  }

  private publishDeadShim(ns: string, id: string, pid: number, exitStatus: number, exitedAt?: Message): void {
    const at = exitedAt && exitedAt.seconds > 0 ? exitedAt : nowTimestamp();
    this.opts.events.publish(ns, '/tasks/exit', 'containerd.events.TaskExit', { container_id: id, id, pid, exit_status: exitStatus, exited_at: at });
    this.opts.events.publish(ns, '/tasks/delete', 'containerd.events.TaskDelete', { container_id: id, pid, exit_status: exitStatus, exited_at: at });
  }

  /** Reconnects to a bundle's shim after a restart; a dead one is cleaned up with its exit published. */
  private async recover(ns: string, id: string): Promise<void> {
    const paths = bundlePaths(this.opts.stateRoot, this.opts.workRoot, ns, id);
    const log = this.opts.log.child({ ns, id });
    let binary: string;
    let address: string;
    try {
      binary = fs.readFileSync(path.join(paths.bundle, 'shim-binary-path'), 'utf8');
      address = fs.readFileSync(path.join(paths.bundle, 'address'), 'utf8').trim();
    } catch {
      log.warn('removing a task bundle without a shim address');
      removeBundle(paths);
      return;
    }
    const launch = this.launch(ns, id, binary, paths);
    this.watchLog(key(ns, id), paths.bundle, launch.log);
    try {
      const shim = await Shim.connect(launch, address, 5000);
      const connected = await shim.call('Connect', { id }, { timeoutMs: 5000 });
      const task: ManagedTask = { ns, id, runtime: binary, shim, paths, pid: connected.task_pid, shimPid: connected.shim_pid };
      this.tasks.set(key(ns, id), task);
      shim.onClose(() => void this.shimGone(task));
      // An exit while berthd was down may not have reached anyone: publish what the shim recorded.
      const state = await shim.call('State', { id }, { timeoutMs: 5000 }).catch(() => undefined);
      if (state?.status === 'STOPPED') {
        this.opts.events.publish(ns, '/tasks/exit', 'containerd.events.TaskExit', {
          container_id: id,
          id,
          pid: state.pid,
          exit_status: state.exit_status,
          exited_at: state.exited_at,
        });
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'shim did not answer; cleaning up its task');
      const res = await this.cleanupBundle(ns, id, paths, binary).catch(() => undefined);
      this.publishDeadShim(ns, id, res?.pid ?? 0, res?.exitStatus ?? 255, res?.exitedAt);
    }
  }

  /** Closes connections (shims and their tasks keep running) and the events server. */
  async close(): Promise<void> {
    this.closing = true;
    // our spare berth shim would only wait for a daemon that is gone
    stopSpare(SOCKET_DIR, this.opts.grpcAddress);
    await Promise.all([...this.tasks.values()].map((t) => t.shim.close().catch(() => undefined)));
    for (const close of this.closeLogs.values()) close();
    this.closeLogs.clear();
    await this.eventsServer?.close(2000);
  }
}
