// Starts a real berthd (the compiled daemon, as operators run it) in its own temporary root,
// state and socket, and cleans up after it: the process by pid, then the directory.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from '../../cli/client';

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
