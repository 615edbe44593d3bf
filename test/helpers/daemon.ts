// Starts a real berthd (the compiled daemon, as operators run it) in its own temporary root,
// state and socket, and cleans up after it: the process by pid, then the directory.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from '../../cli/client';
import { fifoRoot } from '../../cli/stdio';

/** dist/test/helpers → the package root. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');
export const BERTHD = path.join(PACKAGE_ROOT, 'dist', 'services', 'server', 'main.js');
export const BERTH = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');

export function tempDir(prefix = 'berth-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface DaemonOptions {
  dir?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Resolve once the process exits instead of once it serves (for start-up failures). */
  expectExit?: boolean;
}

export class TestDaemon {
  proc: ChildProcess | undefined;
  stderr = '';
  /** The cgroup directories one level below each hierarchy when the daemon was made (see assertNothingLeft). */
  readonly cgroupsBefore = new Set(cgroupTops());
  private exitPromise: Promise<number | null> | undefined;

  constructor(
    readonly dir: string,
    private readonly extraArgs: string[] = [],
    private readonly env: NodeJS.ProcessEnv = {},
  ) {}

  get root() {
    return path.join(this.dir, 'root');
  }
  get state() {
    return path.join(this.dir, 'state');
  }
  get address() {
    return path.join(this.dir, 'berthd.sock');
  }

  args(): string[] {
    return ['--root', this.root, '--state', this.state, '--address', this.address, '--log-level', 'warn', ...this.extraArgs];
  }

  /** Spawns berthd and waits until its socket accepts connections. */
  async start(): Promise<void> {
    const proc = spawn(process.execPath, [BERTHD, ...this.args()], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.proc = proc;
    this.stderr = '';
    proc.stderr!.on('data', (d) => (this.stderr += d.toString()));
    this.exitPromise = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`berthd exited with ${proc.exitCode}: ${this.stderr}`);
      if (await connectable(this.address)) return;
      if (Date.now() > deadline) throw new Error(`berthd did not start in time: ${this.stderr}`);
      await sleep(20);
    }
  }

  /** Runs berthd expecting it to fail; resolves with its exit code and stderr. */
  async runToExit(): Promise<{ code: number | null; stderr: string }> {
    const proc = spawn(process.execPath, [BERTHD, ...this.args()], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.env } });
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    return { code, stderr };
  }

  exited(): Promise<number | null> {
    return this.exitPromise ?? Promise.resolve(null);
  }

  get pid(): number {
    return this.proc!.pid!;
  }

  /** SIGKILL, as a crash: no cleanup by the daemon. */
  async kill(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited();
    }
  }

  async terminate(): Promise<number | null> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc?.kill('SIGKILL'), 15_000);
      const code = await this.exited();
      clearTimeout(timer);
      return code;
    }
    return this.proc?.exitCode ?? null;
  }

  client(namespace = 'default'): Client {
    return new Client(this.address, namespace);
  }
}

export async function startDaemon(options: DaemonOptions = {}): Promise<TestDaemon> {
  const d = new TestDaemon(options.dir ?? tempDir(), options.args, options.env);
  await d.start();
  return d;
}

/** Stops the daemons (by the pids we started) and removes their directories. */
export async function cleanup(...daemons: Array<TestDaemon | undefined>): Promise<void> {
  for (const d of daemons) {
    if (!d) continue;
    await d.kill();
    fs.rmSync(d.dir, { recursive: true, force: true });
  }
}

export function connectable(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(address);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for a condition, polling; fails with `what` after the timeout. */
export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const CGROUP_ROOT = '/sys/fs/cgroup';
const TASK_DIR = 'io.containerd.runtime.v2.task';

/** The hierarchies (v1 controllers, or the v2 root itself). */
function cgroupHierarchies(): string[] {
  if (!fs.existsSync(CGROUP_ROOT)) return [];
  if (fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'))) return [CGROUP_ROOT];
  return fs
    .readdirSync(CGROUP_ROOT, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(CGROUP_ROOT, e.name));
}

function cgroupTops(): string[] {
  const out: string[] = [];
  for (const h of cgroupHierarchies()) {
    try {
      for (const e of fs.readdirSync(h, { withFileTypes: true })) if (e.isDirectory()) out.push(path.join(h, e.name));
    } catch {
      // a hierarchy we cannot read
    }
  }
  return out;
}

/** Mount points at or below `prefix`, from /proc/mounts (octal escapes decoded). */
function mountsBelow(prefix: string): string[] {
  const base = prefix.replace(/\/+$/, '');
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((t) => t === base || t.startsWith(`${base}/`));
}

/**
 * Shim processes started for this daemon: containerd passes shims the daemon's TTRPC_ADDRESS
 * (<address>.ttrpc) in their environment; the berth shim rewrites its command line (no -address).
 */
export function shimProcesses(daemon: TestDaemon): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!argv.slice(0, 2).some((a) => a.includes('containerd-shim'))) continue;
      const env = fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (argv.includes(daemon.address) || env.includes(`TTRPC_ADDRESS=${daemon.address}.ttrpc`)) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

const listDir = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);

/**
 * What a test file must not leave behind, checked in its afterAll before cleanup(daemon), once its
 * tasks and containers are deleted: no task bundle or work directory in the daemon's state or
 * root; then, the daemon stopped (SIGTERM: that also stops its spare berth shim), no shim process
 * of this daemon (given time to exit), no mount under its directory (or `dirs`), no cgroup
 * /<namespace>/<id> for `ids` in any hierarchy, no FIFO directory of berth's for them. Empty
 * per-namespace cgroup parents that did not exist when the daemon was made (runc leaves them) are
 * removed. Throws listing every leak.
 */
export async function assertNothingLeft(
  daemon: TestDaemon,
  options: { namespaces?: string[]; ids?: string[]; dirs?: string[] } = {},
): Promise<void> {
  const namespaces = options.namespaces ?? ['default'];
  const ids = options.ids ?? [];
  const leaks: string[] = [];

  for (const base of [daemon.state, daemon.root]) {
    for (const ns of listDir(path.join(base, TASK_DIR))) {
      for (const id of listDir(path.join(base, TASK_DIR, ns))) leaks.push(`task directory ${path.join(base, TASK_DIR, ns, id)}`);
    }
  }

  await daemon.terminate();
  await waitFor('the shims to exit', () => (shimProcesses(daemon).length === 0 ? true : undefined), 20_000).catch(() => undefined);
  for (const pid of shimProcesses(daemon)) leaks.push(`shim process ${pid}`);
  // runc's state root for a namespace (the runc shim's default, /run/containerd/runc/<ns>): runc
  // leaves it behind empty; one that is not empty holds a container runc still knows
  for (const ns of namespaces) {
    const runcRoot = path.join('/run/containerd/runc', ns);
    for (const id of ids) if (fs.existsSync(path.join(runcRoot, id))) leaks.push(`runc state ${path.join(runcRoot, id)}`);
    try {
      fs.rmdirSync(runcRoot);
    } catch {
      // absent, or reported above
    }
  }
  for (const dir of [daemon.dir, ...(options.dirs ?? [])]) for (const m of mountsBelow(dir)) leaks.push(`mount ${m}`);

  for (const h of cgroupHierarchies()) {
    for (const ns of namespaces) {
      const parent = path.join(h, ns);
      for (const id of ids) if (fs.existsSync(path.join(parent, id))) leaks.push(`cgroup ${path.join(parent, id)}`);
      if (!daemon.cgroupsBefore.has(parent) && fs.existsSync(parent)) {
        try {
          fs.rmdirSync(parent); // only succeeds when empty
        } catch {
          // not empty (someone else's, or reported above)
        }
      }
    }
  }

  const fifos = fifoRoot();
  for (const entry of listDir(fifos)) {
    if (namespaces.some((ns) => ids.some((id) => entry.startsWith(`${ns}-${id}-`)))) {
      leaks.push(`FIFO directory ${path.join(fifos, entry)}`);
      fs.rmSync(path.join(fifos, entry), { recursive: true, force: true });
    }
  }
  if (leaks.length) throw new Error(`left behind:\n  ${leaks.join('\n  ')}`);
}
